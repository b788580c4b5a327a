package steps

import (
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

// leaveScript takes the node agent off a node a deleted cluster leaves:
// its monit check (monit reads its checks again), its process, binary and
// files. The engine's state on the node (markers, claim) goes after the
// deployment, when no step of it runs there (contract.Probe.Leave).
const leaveScript = `set -u
if [ -e /etc/monit/conf.d/de-agent ]; then
  monit stop de-agent >/dev/null 2>&1 || true
  rm -f /etc/monit/conf.d/de-agent
  monit reload >/dev/null 2>&1 || true
fi
pkill -f '^` + AgentBin + ` ' || true
rm -f ` + AgentBin + ` ` + nodefs.AgentConfig + ` ` + nodefs.AgentPassword + ` ` + agentCheckRead + `
i=0
while pgrep -f '^` + AgentBin + ` ' >/dev/null; do
  i=$((i+1))
  if [ $i -ge 100 ]; then echo "the node agent did not stop within 10 s" >&2; exit 1; fi
  sleep 0.1
done
`

// LeaveSteps are the steps of a cluster's delete that take the engine's
// agent off each of nodes, each after the steps of after on its node
// (the removals of its instances). The steps are stamped as b's.
func (in Builder) LeaveSteps(nodes []string, after map[string][]string) []*Step {
	var out []*Step
	for _, ip := range nodes {
		s := &Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "leave", Script: leaveScript,
			Hash: Hash("leave", in.ID)}, After: after[ip], Prio: -300}
		out = append(out, in.stamp(s))
	}
	return out
}
