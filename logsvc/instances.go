package logsvc

import (
	"context"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// instances maps each component instance to its position in the config,
// read from KV and read again when a line names an instance it lacks, or
// once the config changed (stale: its secrets may have).
type instances struct {
	kv jetstream.KeyValue
	// red takes out every secret of every config read since the service
	// started: a process may still print a password the config no longer
	// holds.
	red     contract.OutputRedactor
	pos     map[string]map[string]int
	readAt  uint64 // batch of the last read
	everRan bool
	stale   atomic.Bool // set by the config's watcher (see watchConfig)
}

// watchConfig marks the cache stale at each change of the stored config,
// until ctx ends: a config whose secrets changed while its instances did
// not would otherwise never be read again, and its new secrets would pass
// through runtime lines in clear.
func (c *instances) watchConfig(ctx context.Context) error {
	w, err := c.kv.Watch(ctx, bus.KeyConfig, jetstream.UpdatesOnly())
	if err != nil {
		return err
	}
	go func() {
		defer func() { _ = w.Stop() }()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					c.stale.Store(true)
				}
			}
		}
	}()
	return nil
}

// position is the index of ip in the config's list for component. A miss
// re-reads the config, at most once per batch: a new config arrives
// before the lines of its deployment, and a component that is not in it
// would otherwise cost a read per line.
func (c *instances) position(component, ip string, batch uint64) (int, bool) {
	if c.stale.Swap(false) {
		c.reload()
	}
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
	c.red = c.red.Also(cfg)
}

// redact replaces every secret of the config in line.
func (c *instances) redact(line string) string {
	if c.pos == nil || c.stale.Swap(false) {
		c.reload()
	}
	return c.red.Redact(line)
}
