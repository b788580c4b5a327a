package logsvc

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// instances maps each component instance to its position in the config,
// read from KV and read again when a line names an instance it lacks.
type instances struct {
	kv      jetstream.KeyValue
	pos     map[string]map[string]int
	red     contract.OutputRedactor // the config's secrets, to take out of runtime lines
	readAt  uint64                  // batch of the last read
	everRan bool
}

// position is the index of ip in the config's list for component. A miss
// re-reads the config, at most once per batch: a new config arrives
// before the lines of its deployment, and a component that is not in it
// would otherwise cost a read per line.
func (c *instances) position(component, ip string, batch uint64) (int, bool) {
	if n, ok := c.pos[component][ip]; ok {
		return n, true
	}
	if c.everRan && c.readAt == batch {
		return 0, false
	}
	c.everRan, c.readAt = true, batch
	c.reload()
	n, ok := c.pos[component][ip]
	return n, ok
}

func (c *instances) reload() {
	if c.kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg, err := bus.LoadConfig(ctx, c.kv)
	if err != nil {
		// No config yet (or the bus is away): keep what we know.
		return
	}
	pos := make(map[string]map[string]int, len(cfg.Components))
	for comp, ips := range cfg.Components {
		m := make(map[string]int, len(ips))
		for i, ip := range ips {
			// Subjects carry canonical IPs; the config may not.
			if a, err := netip.ParseAddr(strings.TrimSpace(ip)); err == nil {
				ip = a.String()
			}
			if _, dup := m[ip]; !dup {
				m[ip] = i
			}
		}
		pos[comp] = m
	}
	c.pos = pos
	c.red = cfg.OutputRedactor()
}

// redact replaces every secret of the config in line.
func (c *instances) redact(line string) string {
	if c.pos == nil {
		c.reload()
	}
	return c.red.Redact(line)
}
