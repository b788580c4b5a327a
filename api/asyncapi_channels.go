package api

import (
	"reflect"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// eventDoc describes one channel of the AsyncAPI document: a family of
// event subjects and the payload the engine publishes on it.
type eventDoc struct {
	name, title, desc string
	typ               reflect.Type
	// at is the subject the engine publishes a payload on, made by the
	// same services/subject call as its publisher's.
	at func(any) string
	// params is a payload whose fields that go into the subject hold
	// placeholders: the channel's address is at(params).
	params   any
	examples []any
	// exampleAt, when set, is the subject of an example whose payload
	// does not hold the subject's tokens (an agent's request).
	exampleAt func(any) string
}

// subjectOf is the subject example x is published on.
func (ev eventDoc) subjectOf(x any) string {
	if ev.exampleAt != nil {
		return ev.exampleAt(x)
	}
	return ev.at(x)
}

// event is a channel whose payloads are Ts.
func event[T any](name, title, desc string, at func(T) string, params T, examples ...T) eventDoc {
	ev := eventDoc{name: name, title: title, desc: desc, typ: reflect.TypeFor[T](), params: params,
		at: func(v any) string { return at(v.(T)) }}
	for _, x := range examples {
		ev.examples = append(ev.examples, x)
	}
	return ev
}

// Placeholders: valid subject tokens that stand for a channel's
// parameters while its address is built. An IP placeholder is an address
// of TEST-NET-1, which the subject writes with dashes.
const (
	pDeployment = "x0deployment0x"
	pComponent  = "x0component0x"
	pKind       = "x0kind0x"
	pAction     = "x0action0x"
	pRun        = "x0run0x"
	pIP         = "192.0.2.254"
)

// placeholders name the parameter each placeholder's token stands for.
var placeholders = map[string]string{
	pDeployment: "deployment", pComponent: "component", pKind: "kind", pAction: "action", pRun: "run", "192-0-2-254": "ip",
}

var paramDescs = map[string]string{
	"deployment": "the deployment's id (d-…), as POST /deployment-engine/deploy answered it",
	"ip":         "a node's IPv4 address as the config lists it, its dots written as dashes (10.0.0.5 is 10-0-0-5)",
	"component":  "a component's name, as the config's components name it",
	"kind":       "what happened: the last token names it, and the payload's kind repeats it",
	"run":        "the id the installer gave the command in its exec request (its run field)",
	"action":     "the change: config, deploy, scale, restart, stop, heal, release, rollback, cancel, plan, takeover, maintenance, certificate, or heal-… for auto-heal's own",
}

// eventDocs are the channels of the events a tool may follow, in the
// order the README lists them. Every family of subject.Families has one
// at least (a test holds it).
func eventDocs() []eventDoc {
	at := time.Date(2026, 11, 24, 22, 39, 5, 0, time.UTC)
	later := at.Add(41 * time.Second)
	exit := 0
	return []eventDoc{
		event("deploymentStarted", "A deployment started",
			"A deployment (a deploy, a scale, a restart, a rollback or a reapply) began to run.",
			func(e contract.DeploymentEvent) string { return subject.DeployEvent(e.ID, subject.DeployStarted) },
			contract.DeploymentEvent{ID: pDeployment},
			contract.DeploymentEvent{V: 1, ID: "d-20261124-223905-1a2b", State: contract.StateRunning, Time: at}),
		event("deploymentFinished", "A deployment ended",
			"A deployment ended: succeeded, failed or cancelled, with how many steps changed something and, when it failed, why.",
			func(e contract.DeploymentEvent) string { return subject.DeployEvent(e.ID, subject.DeployFinished) },
			contract.DeploymentEvent{ID: pDeployment},
			contract.DeploymentEvent{V: 1, ID: "d-20261124-223905-1a2b", State: contract.StateSucceeded, Changed: 3, Time: later},
			contract.DeploymentEvent{V: 1, ID: "d-20261124-224410-9c8d", State: contract.StateFailed, Time: later,
				Error: "10.0.0.2/redis/install failed: exit status 100"}),
		event("deploymentStep", "A step changed state",
			"One step of a deployment on one node: dispatched, running, succeeded, failed (final once no retry follows) or skipped.",
			func(e contract.StepEvent) string { return subject.DeployEvent(e.Deployment, subject.DeployStep) },
			contract.StepEvent{Deployment: pDeployment},
			contract.StepEvent{V: 1, Deployment: "d-20261124-223905-1a2b", ID: "10.0.0.1/nats/install", Node: "10.0.0.1",
				Component: "nats", Action: "install", State: contract.StateSucceeded, Attempt: 1, Started: &at, Finished: &later, ExitCode: &exit}),
		event("deploymentBatch", "A rollout's batch changed state",
			"A batch of a rolling deployment started, a canary's verdict, a batch healthy or failed.",
			func(e contract.BatchEvent) string { return subject.DeployEvent(e.ID, subject.DeployBatch) },
			contract.BatchEvent{ID: pDeployment},
			contract.BatchEvent{V: 1, ID: "d-20261124-223905-1a2b", Time: later.Format(time.RFC3339),
				Batch: contract.Batch{Component: "web", Index: 0, Canary: true, Nodes: []string{"10.0.0.3"}, State: contract.BatchHealthy,
					Steps: []string{"10.0.0.3/web/install"}}}),
		event("logLine", "A line of a step's output",
			"One line a step's command wrote, as it arrives; seq orders the lines of one step attempt.",
			func(e contract.LogLine) string { return subject.Log(e.Deployment, e.Node, e.Component) },
			contract.LogLine{Deployment: pDeployment, Node: pIP, Component: pComponent},
			contract.LogLine{V: 1, Deployment: "d-20261124-223905-1a2b", Node: "10.0.0.1", Component: "nats",
				Step: "10.0.0.1/nats/install", Stream: "stdout", Seq: 12, Time: at, Line: "Setting up nats-server ..."}),
		event("componentUp", "An instance came back",
			"A component's instance runs again after it was seen down.",
			func(e contract.ComponentEvent) string { return subject.ComponentEvent(e.Component, e.IP, true) },
			contract.ComponentEvent{Component: pComponent, IP: pIP},
			contract.ComponentEvent{V: 1, Component: "web", IP: "10.0.0.1", Up: true, Time: later}),
		event("componentDown", "An instance went down",
			"A component's instance stopped, or its node went silent.",
			func(e contract.ComponentEvent) string { return subject.ComponentEvent(e.Component, e.IP, false) },
			contract.ComponentEvent{Component: pComponent, IP: pIP},
			contract.ComponentEvent{V: 1, Component: "web", IP: "10.0.0.1", Time: at, Reason: "monit: web not running"}),
		event("audit", "A change to the cluster",
			"One change, through the API or by the engine itself (auto-heal as engine, a schedule's run as schedule:<name>): who, what, on what and how it ended; a config's diff has its secrets redacted.",
			func(e contract.AuditEntry) string { return subject.Audit(e.Action) },
			contract.AuditEntry{Action: pAction},
			contract.AuditEntry{V: 1, Time: at, Actor: "alice", Action: contract.AuditStop, Object: "web@10.0.0.1",
				Component: "web", IP: "10.0.0.1", Result: "ok", Code: 200},
			contract.AuditEntry{V: 1, Time: at, Actor: "ci", Action: contract.AuditConfig, Object: "config", Result: "ok", Code: 201,
				Diff: []string{`+ components.web[1]: "10.0.0.2"`, `~ properties.domain: "a.local" → "b.local"`}},
			contract.AuditEntry{V: 1, Time: at, Actor: contract.ScheduleActor("weekly-web"), Action: contract.AuditScheduleRun,
				Object: "schedule weekly-web", Deployment: "d-20261124-223905-1a2b3c", Result: "ok", Code: 202,
				Detail: "restart: started deployment d-20261124-223905-1a2b3c"}),
		event("heal", "What auto-heal did or decided",
			"An attempt to bring an instance back (restart, reapply), its outcome (recovered, failing), a meltdown, auto-heal switched on or off.",
			func(e contract.HealEvent) string { return subject.HealEvent(e.Kind) },
			contract.HealEvent{Kind: pKind},
			contract.HealEvent{V: 1, Kind: "restart", Time: at, Component: "web", IP: "10.0.0.1", Attempt: 1, Result: "failed",
				Message: "restart through monit did not bring web back within 15s"},
			contract.HealEvent{V: 1, Kind: "disabled", Time: at, Result: "ok", Message: "auto-heal switched off by alice"}),
		event("engine", "An operation of the engine",
			"The engine's own operations, as its operations log records them: a restart or stop through the API, a rollout's verdict, "+
				"a release stored, a schedule added, run or deleted (kind schedule), the cloud config stored (kind cloud-config), a manifest stored (kind manifest), a certificate near its expiry (kind certificate, with the certificate and the threshold passed).",
			func(e contract.EngineEvent) string { return subject.EngineEvent(e.Kind) },
			contract.EngineEvent{Kind: pKind},
			contract.EngineEvent{V: 1, Kind: "restart", Time: at, Message: "restart web on 10.0.0.1: ok"},
			contract.EngineEvent{V: 1, Kind: contract.EventCertificate, Time: at, Message: "certificate agents-ca expires in 29 days",
				WarnDays: 30, Certificate: &contract.Certificate{Name: "agents-ca", Subject: "CN=deployment-engine,O=deployment-engine",
					Issuer: "CN=deployment-engine,O=deployment-engine", DNSNames: []string{"localhost"}, IPAddresses: []string{"127.0.0.1"},
					Serial: "1f3a", SHA256: "ab12", NotBefore: at.AddDate(-1, 0, 0), NotAfter: at.AddDate(0, 0, 29),
					SecondsLeft: 29 * 86400, IsCA: true, Source: contract.CertMade}}),
	}
}

// eventExamples are the payload types' examples, by type, for their
// schemas: the first example of each channel and reply.
func eventExamples() map[reflect.Type]any {
	out := map[reflect.Type]any{}
	add := func(t reflect.Type, examples []any) {
		if _, ok := out[t]; !ok && t != nil && len(examples) > 0 {
			out[t] = examples[0]
		}
	}
	for _, ev := range eventDocs() {
		add(ev.typ, ev.examples)
	}
	for _, nd := range nodeDocs() {
		add(nd.typ, nd.examples)
		if nd.reply != nil {
			add(nd.reply.typ, nd.reply.examples)
		}
	}
	return out
}
