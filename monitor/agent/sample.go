package agent

import (
	"context"
	"os"
	"os/exec"
	"time"

	"github.com/shirou/gopsutil/v3/cpu"
	"github.com/shirou/gopsutil/v3/disk"
	"github.com/shirou/gopsutil/v3/mem"

	"github.com/deployment-engine/engine/services/contract"
)

// sampler reads the node's hardware and usage through gopsutil.
type sampler struct{}

func newSampler() *sampler {
	// The first cpu.Percent(0) call sets the baseline for the next one.
	_, _ = cpu.Percent(0, false)
	return &sampler{}
}

// sample fills a heartbeat's hardware (the manual's units: cores, RAM in
// KiB, DISK in MB) and usage (percent since the previous sample).
func (s *sampler) sample(ctx context.Context, ip string) contract.Heartbeat {
	hb := contract.Heartbeat{V: contract.Version, IP: ip, Time: time.Now().UTC()}
	hb.Hostname, _ = os.Hostname()
	hb.Hardware.IP = ip
	if n, err := cpu.CountsWithContext(ctx, true); err == nil {
		hb.Hardware.CPU = n
	}
	if p, err := cpu.PercentWithContext(ctx, 0, false); err == nil && len(p) == 1 {
		hb.CPUPct = p[0]
	}
	if m, err := mem.VirtualMemoryWithContext(ctx); err == nil {
		hb.Hardware.RAM = int64(m.Total / 1024)
		hb.MemPct = m.UsedPercent
	}
	if d, err := disk.UsageWithContext(ctx, "/"); err == nil {
		hb.Hardware.DISK = contract.DiskMB(int64(d.Total / 1024))
		hb.DiskPct = d.UsedPercent
	}
	return hb
}

// runMonit runs monit with args, never through a shell.
func runMonit(ctx context.Context, cmd []string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, cmd[0], append(cmd[1:len(cmd):len(cmd)], args...)...).CombinedOutput()
}
