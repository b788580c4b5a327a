package subject

import (
	"strings"
	"testing"
)

func TestRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"cmd", ConfigPut(), "de.cmd.config.put"},
		{"endpoint", EndpointName(InstallerExec()), "installer-exec"},
		{"step", Step("d1", "10.0.0.1"), "de.step.d1.10-0-0-1"},
		{"log", Log("d1", "10.0.0.1", "nats"), "de.evt.log.d1.10-0-0-1.nats"},
		{"deploy", DeployEvent("d1", DeployFinished), "de.evt.deploy.d1.finished"},
		{"node", Node("127.0.0.2", "heartbeat"), "de.node.127-0-0-2.heartbeat"},
		{"component", ComponentEvent("web", "10.0.0.9", false), "de.evt.component.web.10-0-0-9.down"},
		{"bad token", Log("d1", "10.0.0.1", "a.b"), "de.evt.log.d1.10-0-0-1.invalid"},
		{"bad ip", Step("d1", "not-an-ip"), "de.step.d1.invalid"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	if l, err := ParseLog(Log("d1", "10.0.0.1", "nats")); err != nil || l != (LogSubject{"d1", "10.0.0.1", "nats"}) {
		t.Errorf("ParseLog = %+v, %v", l, err)
	}
	if s, err := ParseStep(Step("d2", "192.168.1.20")); err != nil || s != (StepSubject{"d2", "192.168.1.20"}) {
		t.Errorf("ParseStep = %+v, %v", s, err)
	}
	if n, err := ParseNodeLog(NodeLog("10.1.2.4", "web")); err != nil || n != (NodeLogSubject{"10.1.2.4", "web"}) {
		t.Errorf("ParseNodeLog = %+v, %v", n, err)
	}
	if got := NodeLogsOf("web"); got != "de.node.*.log.web" || NodeLogsOf("a.>") != "de.node.*.log.invalid" {
		t.Errorf("NodeLogsOf = %q, %q", got, NodeLogsOf("a.>"))
	}
	for _, bad := range []string{"de.node.10-1-2-4.log", "de.node.10-1-2-4.heartbeat.web", "de.node.x.log.web", "de.node.10-1-2-4.log.w.b"} {
		if _, err := ParseNodeLog(bad); err == nil {
			t.Errorf("ParseNodeLog(%q) accepted", bad)
		}
	}
	if n, err := ParseNode(Node("10.1.2.3", "heartbeat")); err != nil || n != (NodeSubject{"10.1.2.3", "heartbeat"}) {
		t.Errorf("ParseNode = %+v, %v", n, err)
	}
	if c, err := ParseComponent(ComponentEvent("web", "10.0.0.9", true)); err != nil || c != (ComponentSubject{"web", "10.0.0.9", true}) {
		t.Errorf("ParseComponent = %+v, %v", c, err)
	}
	for _, bad := range []string{"", "de.evt.log.d1.x.y", "de.evt.log.d1.10-0-0-1", "foo.evt.log.a.10-0-0-1.b"} {
		if _, err := ParseLog(bad); err == nil {
			t.Errorf("ParseLog(%q) accepted", bad)
		}
	}
}

func TestParseEvent(t *testing.T) {
	tests := []struct {
		subj string
		want Event
	}{
		{DeployEvent("d-1", DeployStarted), Event{FamilyDeploy, "started"}},
		{DeployEvent("d-1", DeployStep), Event{FamilyDeploy, "step"}},
		{DeployEvent("d-1", DeployFinished), Event{FamilyDeploy, "finished"}},
		{DeployEvent("d-1", DeployBatch), Event{FamilyDeploy, "batch"}},
		{Log("d-1", "10.0.0.1", "web"), Event{FamilyLog, "web"}},
		{ComponentEvent("web", "10.0.0.1", false), Event{FamilyComponent, "down"}},
		{EngineEvent("restart"), Event{FamilyEngine, "restart"}},
		{Audit("deploy"), Event{FamilyAudit, "deploy"}},
		{HealEvent("gave-up"), Event{FamilyHeal, "gave-up"}},
	}
	for _, tt := range tests {
		if got, err := ParseEvent(tt.subj); err != nil || got != tt.want {
			t.Errorf("ParseEvent(%q) = %+v, %v; want %+v", tt.subj, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "de.evt", "de.evt.deploy.d-1.other", "de.evt.deploy.d-1", "de.evt.log.d1.x.web",
		"de.evt.component.web.10-0-0-1.sideways", "de.evt.node.10-0-0-1.usage", "de.cmd.config.put", "de.evt.engine..x", "xx.evt.engine.restart"} {
		if ev, err := ParseEvent(bad); err == nil {
			t.Errorf("ParseEvent(%q) = %+v, want an error", bad, ev)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("de.evt.log.d1.10-0-0-1.nats")
	f.Add("de.step.x.1-2-3-4")
	f.Add("de.evt.deploy.d-1.finished")
	f.Fuzz(func(t *testing.T, s string) {
		if ev, err := ParseEvent(s); err == nil && (ev.Kind == "" || !strings.HasSuffix(s, "."+ev.Kind) || !strings.HasPrefix(s, "de.evt."+string(ev.Family)+".")) {
			t.Fatalf("event %q parsed as %+v", s, ev)
		}
		if l, err := ParseLog(s); err == nil && Log(l.Deployment, l.IP, l.Component) != s {
			t.Fatalf("log %q does not round-trip", s)
		}
		if st, err := ParseStep(s); err == nil && Step(st.Deployment, st.IP) != s {
			t.Fatalf("step %q does not round-trip", s)
		}
	})
}

func TestExecOutput(t *testing.T) {
	if got, want := ExecOutput("10.0.0.5", "r1"), "de.node.10-0-0-5.exec-out.r1"; got != want {
		t.Errorf("ExecOutput = %q, want %q", got, want)
	}
	if got := ExecOutput("10.0.0.5", "a.b"); got != "de.node.10-0-0-5.exec-out.invalid" {
		t.Errorf("ExecOutput with a dotted run = %q, want the invalid token", got)
	}
	// Every exec subject stays inside the node's own permission boundary.
	for _, s := range []string{Node("10.0.0.5", VerbExec), Node("10.0.0.5", VerbExecClose), Node("10.0.0.5", VerbHello), ExecOutput("10.0.0.5", "r1")} {
		if !strings.HasPrefix(s, strings.TrimSuffix(NodeAll("10.0.0.5"), ">")) {
			t.Errorf("%s is outside %s", s, NodeAll("10.0.0.5"))
		}
	}
}

// Families lists every family ParseEvent reads, once: the AsyncAPI
// document has a channel for each.
func TestFamilies(t *testing.T) {
	seen := map[Family]bool{}
	for _, f := range Families() {
		if _, ok := eventTokens[f]; !ok || seen[f] {
			t.Errorf("family %q: parsed %v, listed twice %v", f, ok, seen[f])
		}
		seen[f] = true
	}
	if len(seen) != len(eventTokens) {
		t.Errorf("Families lists %d families, ParseEvent reads %d", len(seen), len(eventTokens))
	}
}

// Every builder of an agent's subject puts a verb of NodeVerbs fourth, so
// that a list of the agents' verbs (the AsyncAPI document's) misses none.
func TestNodeVerbsCoverTheBuilders(t *testing.T) {
	verbs := map[string]bool{}
	for _, v := range NodeVerbs() {
		if !ValidToken(v) || verbs[v] {
			t.Errorf("verb %q: not a token, or twice", v)
		}
		verbs[v] = true
	}
	for _, s := range []string{
		Node("10.0.0.1", VerbHeartbeat), Node("10.0.0.1", VerbControl), Node("10.0.0.1", VerbHello),
		Node("10.0.0.1", VerbExec), Node("10.0.0.1", VerbExecClose), Node("10.0.0.1", VerbTrust),
		ExecOutput("10.0.0.1", "r1"), NodeLog("10.0.0.1", "web"),
	} {
		if p := strings.Split(s, "."); len(p) < 4 || !verbs[p[3]] {
			t.Errorf("%s: its verb is not in NodeVerbs %v", s, NodeVerbs())
		}
	}
}
