// Package problems finds what is wrong in a cluster and the fixes that
// apply, as `bosh cck` does. A scan reads what the engine already has:
// the monitor's status, the agents' last heartbeats in the store, the
// plan of the stored config (its drift, its removals, the nodes it could
// not read), the certificates' summary, and the config's pre-check, the
// one read that logs in over SSH (an agent's answer never shows a host
// key). Scan turns those facts into problems, each with a stable id. A
// fix is applied as a deployment through the planner's own commands
// (Book).
package problems

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeclient"
)

// Seen is a node's last heartbeat and when the store took it.
type Seen struct {
	HB contract.Heartbeat
	At time.Time
}

// Facts are what a scan reads. A nil Status or Plan was not read: the
// problems only it shows are not found.
type Facts struct {
	Now time.Time
	// Nodes are the stored config's nodes.
	Nodes        []string
	Status       []contract.StatusEntry
	Heartbeats   map[string]Seen
	Plan         *contract.Plan
	Certificates []contract.Certificate
	// HostKeys are the nodes an SSH check (the config's pre-check) found
	// presenting another host key than the pinned one, and what it said:
	// a plan read through a node's agent never sees the key.
	HostKeys map[string]string
	// Version is the engine's build version: an agent reporting another is
	// a problem. Empty: versions are not compared.
	Version string
}

// rank orders the kinds in a scan's answer, most urgent first.
var rank = []string{
	contract.ProblemUnreachable, contract.ProblemHostKey, contract.ProblemNotRunning, contract.ProblemCheckMissing,
	contract.ProblemUnmonitored, contract.ProblemAgentSilent, contract.ProblemAgentVersion, contract.ProblemDrift,
	contract.ProblemDiskFull, contract.ProblemOrphan, contract.ProblemCertificate,
}

// Scan lists the problems f shows, most urgent first, then by node and
// component. A node that could not be read, or that is held in
// maintenance, shows no problem of its instances: the first is the
// problem, the second is a person's on purpose.
func Scan(f Facts) []contract.ClusterProblem {
	var out []contract.ClusterProblem
	add := func(p contract.ClusterProblem) {
		p.ID = ID(p.Kind, p.Node, p.Component, p.Certificate)
		if p.Fixes == nil {
			p.Fixes = []contract.ProblemFix{}
		}
		out = append(out, p)
	}
	down, held := map[string]bool{}, map[string]bool{}
	if f.Plan != nil {
		for _, n := range f.Plan.Nodes {
			held[n.IP] = n.Held != ""
			// A node the config no longer places is read only to remove
			// what it holds: its orphans are listed from the actions a
			// deploy would try there, read or not.
			if n.Error == "" || !slices.Contains(f.Nodes, n.IP) {
				continue
			}
			down[n.IP] = true
			add(unreadNode(n))
		}
	}
	for _, ip := range f.Nodes {
		if why, ok := f.HostKeys[ip]; ok && !slices.ContainsFunc(out, func(p contract.ClusterProblem) bool {
			return p.Kind == contract.ProblemHostKey && p.Node == ip
		}) {
			add(hostKeyProblem(ip, why))
		}
	}
	for _, e := range f.Status {
		if e.Status == contract.StatusMaintenance {
			held[e.Ip] = true
		}
	}
	for _, ip := range f.Nodes {
		if !down[ip] && !held[ip] {
			nodeProblems(f, ip, add)
		}
	}
	for _, e := range f.Status {
		if !down[e.Ip] && !held[e.Ip] {
			if p, ok := instanceProblem(e); ok {
				add(p)
			}
		}
	}
	if f.Plan != nil {
		for _, n := range f.Plan.Nodes {
			if !down[n.IP] && !held[n.IP] {
				planProblems(n, add)
			}
		}
	}
	for _, c := range f.Certificates {
		c = c.At(f.Now)
		if c.SecondsLeft < contract.CertificateProblemDays*24*3600 {
			what := "rotate it, or give the engine a new one (--tls-cert)"
			if v, ok := strings.CutPrefix(c.Name, "variable/"); ok {
				what = "have it generated anew: deployment-engine manifest variables regenerate " + v + ", then manifest deploy"
			}
			add(contract.ClusterProblem{Kind: contract.ProblemCertificate, Certificate: c.Name,
				Detail: c.Expiring(contract.CertificateProblemDays, f.Now) + "; " + what})
		}
	}
	slices.SortStableFunc(out, func(a, b contract.ClusterProblem) int {
		return cmp.Or(cmp.Compare(slices.Index(rank, a.Kind), slices.Index(rank, b.Kind)),
			cmp.Compare(a.Node, b.Node), cmp.Compare(a.Component, b.Component), cmp.Compare(a.Certificate, b.Certificate))
	})
	return out
}

// ID is the stable id of the problem of kind on node, component or
// certificate: the same problem has the same id in every scan.
func ID(kind, node, component, certificate string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + node + "\x00" + component + "\x00" + certificate))
	return "pb-" + hex.EncodeToString(sum[:6])
}

// unreadNode is the problem of a node the plan could not read: its host
// key changed, or it did not answer.
func unreadNode(n contract.PlanNode) contract.ClusterProblem {
	why := contract.Clip(n.Error)
	if strings.Contains(strings.ToLower(n.Error), "host key") {
		return hostKeyProblem(n.IP, n.Error)
	}
	return contract.ClusterProblem{Kind: contract.ProblemUnreachable, Node: n.IP,
		Detail: "not read over SSH: " + why + "; check that the node is up, its sshd runs and the network reaches it"}
}

// hostKeyProblem is ip presenting another host key, as why says. Its fix
// is never recommended: a person must know why the key changed.
func hostKeyProblem(ip, why string) contract.ClusterProblem {
	return contract.ClusterProblem{Kind: contract.ProblemHostKey, Node: ip,
		Detail: contract.Clip(why) + "; if the node was reinstalled, forget the old key — never without knowing why it changed",
		Fixes: []contract.ProblemFix{{Name: contract.FixForgetHostKey,
			Description: "forget the host key pinned for " + ip + " and deploy the stored config, which pins the key the node presents now"}}}
}

// nodeProblems are ip's agent's and disk's problems, from its last
// heartbeat, or for the disk from its status when no agent reports.
func nodeProblems(f Facts, ip string, add func(contract.ClusterProblem)) {
	s, ok := f.Heartbeats[ip]
	fresh := ok && nodeclient.Reporting(s.HB, s.At, f.Now, 0)
	switch {
	case ok && !fresh:
		add(contract.ClusterProblem{Kind: contract.ProblemAgentSilent, Node: ip,
			Detail: fmt.Sprintf("the node answers over SSH but its agent last reported %s ago (at %s)",
				f.Now.Sub(s.At).Round(time.Second), s.At.UTC().Format(time.RFC3339)),
			Fixes: []contract.ProblemFix{
				{Name: contract.FixRestartAgent, Description: "restart the node agent on " + ip + " through monit", Recommended: true},
				{Name: contract.FixDeploy, Description: "deploy the stored config, which installs the agent again where it changed"}}})
	case fresh && f.Version != "" && s.HB.Version != "" && s.HB.Version != f.Version:
		add(contract.ClusterProblem{Kind: contract.ProblemAgentVersion, Node: ip,
			Detail: fmt.Sprintf("the agent runs version %s, the engine %s", contract.Clip(s.HB.Version), f.Version),
			Fixes: []contract.ProblemFix{{Name: contract.FixDeploy,
				Description: "deploy the stored config, which installs the engine's agent", Recommended: true}}})
	}
	disk, known := 0.0, false
	if fresh {
		disk, known = s.HB.DiskPct, true
	} else {
		for _, e := range f.Status {
			if e.Ip == ip {
				if v, err := strconv.ParseFloat(strings.TrimSuffix(e.Disk, "%"), 64); err == nil {
					disk, known = v, true
					break
				}
			}
		}
	}
	if known && disk > contract.DiskFullPct {
		add(contract.ClusterProblem{Kind: contract.ProblemDiskFull, Node: ip,
			Detail: fmt.Sprintf("the disk is %.0f%% used, over %d%%: free room on it (old logs, packages) or grow it", disk, contract.DiskFullPct)})
	}
}

// instanceProblem is what e, an instance's status, shows wrong, if
// anything. An instance whose node does not report is the node's
// problem; one not deployed yet is the plan's business.
func instanceProblem(e contract.StatusEntry) (contract.ClusterProblem, bool) {
	p := contract.ClusterProblem{Node: e.Ip, Component: e.Comp, Detail: contract.Clip(e.Reason)}
	where := e.Comp + " on " + e.Ip
	restart := contract.ProblemFix{Name: contract.FixRestart, Description: "restart " + where + " through monit, which watches it again"}
	reapply := contract.ProblemFix{Name: contract.FixReapply, Description: "apply " + where + " again: its files, install script, monit check and start"}
	why := strings.ToLower(e.Reason)
	// A process monit does not supervise may run all the same: RUNNING,
	// with a reason that says so.
	unsupervised := e.Status == contract.StatusRunning && strings.Contains(why, "monit does not supervise")
	switch {
	case e.Status != contract.StatusDown && !unsupervised, strings.Contains(why, "unreachable"), strings.Contains(why, "not deployed"):
		return p, false
	case strings.Contains(why, "not registered with monit"):
		p.Kind = contract.ProblemCheckMissing
	case unsupervised, strings.Contains(why, "not monitored"):
		p.Kind = contract.ProblemUnmonitored
	case strings.Contains(why, "monit:"):
		p.Kind = contract.ProblemNotRunning
	default:
		// monit itself could not be read: applying the instance again
		// registers its check and reloads monit.
		p.Kind, reapply.Recommended = contract.ProblemNotRunning, true
		p.Fixes = []contract.ProblemFix{reapply, restart}
		return p, true
	}
	if p.Kind == contract.ProblemCheckMissing {
		reapply.Recommended = true
		p.Fixes = []contract.ProblemFix{reapply}
		return p, true
	}
	restart.Recommended = true
	p.Fixes = []contract.ProblemFix{restart, reapply}
	return p, true
}

// planProblems are the drift and the orphans the plan of node n shows.
func planProblems(n contract.PlanNode, add func(contract.ClusterProblem)) {
	var comps []string
	paths := map[string][]string{}
	for _, d := range n.Drift {
		if !slices.Contains(comps, d.Component) {
			comps = append(comps, d.Component)
		}
		what := d.Path
		if d.Found == "missing" {
			what += " (removed)"
		}
		paths[d.Component] = append(paths[d.Component], what)
	}
	deploy := contract.ProblemFix{Name: contract.FixDeploy, Description: "deploy the stored config"}
	for _, c := range comps {
		p := contract.ClusterProblem{Kind: contract.ProblemDrift, Node: n.IP, Component: c,
			Detail: contract.Clip("files changed since the engine wrote them: " + strings.Join(paths[c], ", "))}
		if c == "" {
			deploy.Recommended = true
			p.Fixes = []contract.ProblemFix{deploy}
		} else {
			p.Fixes = []contract.ProblemFix{{Name: contract.FixReapply, Recommended: true,
				Description: "apply " + c + " on " + n.IP + " again, which writes its files back"}, deploy}
		}
		add(p)
	}
	for _, a := range n.Actions {
		if a.Action == "remove" && !a.Held {
			add(contract.ClusterProblem{Kind: contract.ProblemOrphan, Node: n.IP, Component: a.Component,
				Detail: a.Component + " is installed on " + n.IP + " but the config no longer places it there",
				Fixes: []contract.ProblemFix{{Name: contract.FixRemove, Recommended: true,
					Description: "deploy the stored config, which removes " + a.Component + " from " + n.IP + " (and applies every other pending change)"}}})
		}
	}
}
