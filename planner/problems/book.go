package problems

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Book answers the problems' commands: a scan (de.cmd.problems.list) and
// a fix applied (de.cmd.problems.resolve). It reads the facts through
// the bus and the store, as any client of the services would, and
// applies a fix through the planner's own command for it, so that the
// fix is the same deployment that command starts.
type Book struct {
	NC  *nats.Conn
	Res *bus.Resources
	Log *slog.Logger
	// Version is the engine's build version, which its agents should
	// report; empty compares none.
	Version string
	// Wait bounds each command a scan or a fix sends (default 60s: a
	// plan reads every node).
	Wait time.Duration
	// Now is the scan's clock (default time.Now).
	Now func() time.Time
}

// Endpoints are the problems' commands.
func (b Book) Endpoints() map[string]kit.Handler {
	return map[string]kit.Handler{
		subject.ProblemsList():    b.list,
		subject.ProblemsResolve(): b.resolve,
	}
}

func (b Book) list(ctx context.Context, _ micro.Request) (int, any, error) {
	out, err := b.Scan(ctx)
	if err != nil {
		return 0, nil, err
	}
	return 200, out, nil
}

// Scan reads the facts and lists the problems they show. A source that
// cannot be read is named in Unread; no config stored is a 403.
func (b Book) Scan(ctx context.Context) (contract.ProblemList, error) {
	f, unread, err := b.facts(ctx)
	if err != nil {
		return contract.ProblemList{}, err
	}
	return contract.ProblemList{V: contract.Version, Problems: Scan(f), Unread: unread}, nil
}

// facts gathers what a scan reads; unread says what could not be, why.
func (b Book) facts(ctx context.Context) (Facts, []string, error) {
	cfg, rev, err := bus.LoadConfigRev(ctx, b.Res.Config)
	switch {
	case bus.IsNotFound(err) || (err == nil && rev == 0):
		return Facts{}, nil, kit.Errorf(403, "no config submitted yet: POST one to /deployment-engine/config first")
	case err != nil:
		return Facts{}, nil, fmt.Errorf("read the config: %w", err)
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	f := Facts{Now: now(), Nodes: cfg.Nodes(), Version: b.Version}
	unread := []string{}
	var status []contract.StatusEntry
	if err := b.ask(ctx, subject.MonitorStatus(), nil, &status); err != nil {
		unread = append(unread, "status: "+err.Error())
	} else {
		f.Status = status
	}
	var plan contract.Plan
	if err := b.ask(ctx, subject.DeployPlan(), contract.PlanRequest{V: contract.Version}, &plan); err != nil {
		unread = append(unread, "plan: "+err.Error())
	} else {
		f.Plan = &plan
	}
	if f.HostKeys, err = b.hostKeys(ctx); err != nil {
		unread = append(unread, "ssh check: "+err.Error())
	}
	if f.Heartbeats, err = b.heartbeats(ctx); err != nil {
		unread = append(unread, "heartbeats: "+err.Error())
	}
	if certs, err := bus.LoadCertificates(ctx, b.Res.Engine, f.Now); err != nil {
		unread = append(unread, "certificates: "+err.Error())
	} else {
		f.Certificates = certs.Certificates
	}
	return f, unread, nil
}

// hostKeys are the nodes whose SSH host key changed, from the config's
// pre-check: it logs in over SSH, where a plan may read a node through
// its agent.
func (b Book) hostKeys(ctx context.Context) (map[string]string, error) {
	var pre contract.PrecheckReply
	if err := b.ask(ctx, subject.ConfigPrecheck(), nil, &pre); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pre.Problems {
		if p.IP != "" && strings.Contains(strings.ToLower(p.Reason), "host key") {
			out[p.IP] = p.Reason
		}
	}
	return out, nil
}

// heartbeats are the last heartbeat of every node the monitor kept. One
// it cannot read is left out.
func (b Book) heartbeats(ctx context.Context) (map[string]Seen, error) {
	out := map[string]Seen{}
	keys, err := b.Res.Nodes.ListKeys(ctx)
	if err != nil {
		return out, fmt.Errorf("list the nodes' heartbeats: %w", err)
	}
	for k := range keys.Keys() {
		e, err := b.Res.Nodes.Get(ctx, k)
		if err != nil {
			continue
		}
		var hb contract.Heartbeat
		ip, terr := subject.TokenIP(k)
		if json.Unmarshal(e.Value(), &hb) != nil || terr != nil || hb.IP != ip {
			continue
		}
		out[ip] = Seen{HB: hb, At: e.Created()}
	}
	return out, nil
}

// ask sends a command and decodes its 200 reply into out; any other
// reply is an error carrying its code.
func (b Book) ask(ctx context.Context, subj string, body, out any) error {
	wait := b.Wait
	if wait == 0 {
		wait = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	rep, err := kit.Request(ctx, b.NC, subj, body)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return kit.Errorf(503, "no service answers %s", subject.EndpointName(subj))
	case err != nil:
		return kit.Errorf(504, "%s: %v", subject.EndpointName(subj), err)
	case rep.Code >= 300:
		var eb contract.ErrorBody
		if json.Unmarshal(rep.Body, &eb) != nil || eb.Error == "" {
			eb.Error = contract.Clip(string(rep.Body))
		}
		return &kit.Error{Code: rep.Code, Msg: eb.Error, Problems: eb.Problems}
	}
	if err := json.Unmarshal(rep.Body, out); err != nil {
		return fmt.Errorf("%s: unreadable reply: %w", subject.EndpointName(subj), err)
	}
	return nil
}

// resolve applies one fix of one problem of a new scan: 202 with the
// deployment it started, 404 for a problem the scan does not find, 400
// for a fix the problem does not offer (naming those it does).
func (b Book) resolve(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.ProblemResolve
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if !contract.ValidProblemID(in.ID) {
		return 0, nil, kit.Errorf(404, "no problem %q: a problem's id is pb- and 12 hex digits (GET /problems lists them)", contract.Clip(in.ID))
	}
	list, err := b.Scan(ctx)
	if err != nil {
		return 0, nil, err
	}
	var p *contract.ClusterProblem
	for i := range list.Problems {
		if list.Problems[i].ID == in.ID {
			p = &list.Problems[i]
		}
	}
	if p == nil {
		return 0, nil, kit.Errorf(404, "no problem %s now: it is fixed already, or the scan no longer finds it (GET /problems)", in.ID)
	}
	if _, ok := p.Fix(in.Fix); !ok {
		var names []string
		for _, f := range p.Fixes {
			names = append(names, f.Name)
		}
		if len(names) == 0 {
			return 0, nil, kit.Errorf(400, "problem %s (%s) has no fix the engine can apply: %s", p.ID, p.Kind, p.Detail)
		}
		return 0, nil, kit.Errorf(400, "problem %s (%s) has no fix %q; its fixes: %s", p.ID, p.Kind, contract.Clip(in.Fix), strings.Join(names, ", "))
	}
	id, err := b.apply(ctx, *p, in)
	if err != nil {
		return 0, nil, err
	}
	b.log().Info("problem fix started", "problem", p.ID, "kind", p.Kind, "node", p.Node, "component", p.Component,
		"fix", in.Fix, "deployment", id, "actor", in.Actor)
	b.event(ctx, fmt.Sprintf("%s applies fix %s to problem %s (%s%s): deployment %s",
		actor(in.Actor), in.Fix, p.ID, p.Kind, where(*p), id))
	return 202, contract.DeployStarted{ID: id}, nil
}

// apply starts the deployment of fix in.Fix of p through the planner's
// command for it, and returns its id.
func (b Book) apply(ctx context.Context, p contract.ClusterProblem, in contract.ProblemResolve) (string, error) {
	var subj string
	var body any
	switch in.Fix {
	case contract.FixRestart:
		subj, body = subject.DeployRestart(), contract.RollingRestart{V: contract.Version, Component: p.Component, IP: p.Node, MaxInFlight: "1"}
	case contract.FixReapply:
		subj, body = subject.DeployReapply(), contract.Reapply{V: contract.Version, Component: p.Component, IP: p.Node,
			Reason: "fix of problem " + p.ID + " (" + p.Kind + ")"}
	case contract.FixRestartAgent:
		subj, body = subject.DeployExec(), contract.FleetExec{V: contract.Version, Nodes: []string{p.Node},
			Command: "monit monitor de-agent; monit restart de-agent", Actor: in.Actor}
	case contract.FixForgetHostKey:
		if err := b.forgetHostKey(ctx, p.Node); err != nil {
			return "", err
		}
		subj, body = subject.DeployStart(), contract.DeployStart{V: contract.Version}
	default: // FixDeploy, FixRemove
		subj, body = subject.DeployStart(), contract.DeployStart{V: contract.Version}
	}
	var started contract.DeployStarted
	if err := b.ask(ctx, subj, body, &started); err != nil {
		return "", err
	}
	if started.ID == "" {
		return "", kit.Errorf(500, "%s started no deployment", subject.EndpointName(subj))
	}
	return started.ID, nil
}

// forgetHostKey deletes ip's pinned host key: the next contact pins the
// one it presents.
func (b Book) forgetHostKey(ctx context.Context, ip string) error {
	tok, err := subject.IPToken(ip)
	if err != nil {
		return kit.Errorf(400, "%v", err)
	}
	if err := b.Res.HostKeys.Delete(ctx, tok); err != nil && !bus.IsNotFound(err) {
		return fmt.Errorf("forget the host key of %s: %w", ip, err)
	}
	b.log().Warn("pinned host key forgotten", "node", ip)
	return nil
}

func (b Book) log() *slog.Logger {
	if b.Log == nil {
		return slog.Default()
	}
	return b.Log
}

// event records a fix for the operations log.
func (b Book) event(ctx context.Context, msg string) {
	if err := bus.PublishEngineEvent(ctx, b.Res.JS, "resolve", msg); err != nil {
		b.log().Warn("engine event", "err", err)
	}
}

func actor(a string) string {
	if a == "" {
		return "someone"
	}
	return a
}

// where names p's node and component, after a comma.
func where(p contract.ClusterProblem) string {
	s := ""
	for _, part := range []string{p.Component, p.Node, p.Certificate} {
		if part != "" {
			s += ", " + part
		}
	}
	return s
}
