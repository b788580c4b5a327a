package monitor

import (
	"cmp"
	"context"
	"net"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
)

// AgentPort is where every node agent serves /metrics.
const AgentPort = "9280"

// targets answers Prometheus' HTTP service discovery with every node of
// the config, so that a static scrape config follows scale-out and in.
func (m *Monitor) targets(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, err := m.config(ctx)
	if err != nil {
		return 0, nil, err
	}
	out := []contract.SDTarget{}
	for _, ip := range cfg.Nodes() {
		// node names each series by its IP, as the engine's own series do.
		out = append(out, contract.SDTarget{Targets: []string{net.JoinHostPort(ip, AgentPort)},
			Labels: map[string]string{"node": ip, "cluster": cmp.Or(m.o.Cluster, contract.DefaultCluster)}})
	}
	return 200, out, nil
}
