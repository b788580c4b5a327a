package installer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

const probeScript = `nproc; awk '/^MemTotal:/{print $2}' /proc/meminfo; df -Pk / | awk 'NR==2{print $2}'; cat ` + stateDir + `/owner 2>/dev/null || echo`

// probe contacts every node at once with the given credentials.
func (i *Installer) probe(ctx context.Context, req micro.Request) (int, any, error) {
	var p contract.Probe
	if err := kit.Decode(req, &p); err != nil {
		return 0, nil, err
	}
	auth, err := i.restrict(ctx, p.Auth)
	if err != nil {
		return 0, nil, err
	}
	p.Auth = auth
	timeout := time.Duration(p.TimeoutMS) * time.Millisecond
	if timeout <= 0 || timeout > time.Minute {
		timeout = 15 * time.Second
	}
	out := contract.ProbeReply{V: contract.Version, Nodes: make([]contract.ProbeResult, len(p.Nodes))}
	var wg sync.WaitGroup
	for n, ip := range p.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			out.Nodes[n] = i.probeNode(ctx, ip, p.Auth)
		}()
	}
	wg.Wait()
	return 200, out, nil
}

func (i *Installer) probeNode(ctx context.Context, ip string, auth contract.Auth) contract.ProbeResult {
	r := contract.ProbeResult{IP: ip}
	c, err := i.dial(ctx, ip, auth)
	if err != nil {
		r.Error = describe(err)
		r.HostKeyChanged = errors.Is(err, errHostKeyChanged)
		return r
	}
	defer c.Close()
	b, err := output(ctx, c, probeScript, nil)
	if err != nil {
		r.Error = "read hardware: " + err.Error()
		return r
	}
	hw, owner, err := parseProbe(string(b))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	hw.IP = ip
	r.Reachable, r.Hardware, r.Owner = true, hw, owner
	return r
}

// parseProbe reads probeScript's output: cores, MemTotal KiB, / size KiB, owner.
func parseProbe(s string) (contract.NodeHardware, string, error) {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) < 3 {
		return contract.NodeHardware{}, "", fmt.Errorf("unexpected hardware report %q", s)
	}
	cpu, err1 := strconv.Atoi(strings.TrimSpace(lines[0]))
	ram, err2 := strconv.ParseInt(strings.TrimSpace(lines[1]), 10, 64)
	disk, err3 := strconv.ParseInt(strings.TrimSpace(lines[2]), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || cpu < 1 || ram < 1 || disk < 1 {
		return contract.NodeHardware{}, "", fmt.Errorf("unexpected hardware report %q", s)
	}
	owner := ""
	if len(lines) > 3 {
		owner = strings.TrimSpace(lines[3])
	}
	return contract.NodeHardware{CPU: cpu, RAM: ram, DISK: contract.DiskMB(disk)}, owner, nil
}

// describe turns a dial error into what an operator should do.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errHostKeyChanged):
		return err.Error()
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return err.Error() + " — timed out: check that the node is up and its network reaches it"
	case strings.Contains(err.Error(), "connection refused"):
		return err.Error() + " — refused: is sshd running on the node?"
	}
	return err.Error()
}
