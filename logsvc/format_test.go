package logsvc

import (
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestFormatLines(t *testing.T) {
	code := 2
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"component down", appendComponent(nil, "nats", "10.0.0.1", false, "process gone"), "component nats on 10.0.0.1 down: process gone"},
		{"component up", appendComponent(nil, "nats", "10.0.0.1", true, ""), "component nats on 10.0.0.1 up"},
		{"engine", appendEngine(nil, contract.EngineEvent{Kind: "cancel", Message: "deployment d-1\ncancelled"}), `engine cancel: deployment d-1\ncancelled`},
		{"engine without a kind", appendEngine(nil, contract.EngineEvent{}), "engine -"},
		{"step failed, final", appendStepFailed(nil, contract.StepEvent{ID: "10.0.0.1/nats/install", Node: "10.0.0.1", Component: "nats",
			Action: "install", Deployment: "d-1", Attempt: 3, ExitCode: &code, Final: true, Error: "exit 2"}),
			"step 10.0.0.1/nats/install failed on 10.0.0.1 (nats install, deployment d-1, attempt 3, exit 2, final): exit 2"},
		{"step failed, to retry", appendStepFailed(nil, contract.StepEvent{Deployment: "d-1", Attempt: 1}),
			"step - failed on - (- -, deployment d-1, attempt 1, will retry)"},
		{"deployment started", appendDeployment(nil, contract.DeploymentEvent{ID: "d-1"}, true), "deployment d-1 started"},
		{"deployment finished", appendDeployment(nil, contract.DeploymentEvent{ID: "d-1", State: "failed", Changed: 2, Error: "1 step(s) failed"}, false),
			"deployment d-1 finished: failed, 2 changed: 1 step(s) failed"},
		{"install line", appendInstanceLine(nil, "", contract.LogLine{Deployment: "d-1", Step: "s", Stream: "stdout", Line: "ok\r\nforged"}, false),
			`[d-1 s stdout] ok\r\nforged`},
		{"runtime line in local.log", appendInstanceLine(nil, "10.0.0.1 nats ", contract.LogLine{Line: "hi"}, true), "10.0.0.1 nats [runtime -] hi"},
		{"runtime line with a forged stream", appendInstanceLine(nil, "", contract.LogLine{Stream: "a] [d-1 s", Line: "hi"}, true), `[runtime "a] [d-1 s"] hi`},
	}
	for _, c := range cases {
		if string(c.got) != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, c.got, c.want)
		}
	}
}

func TestAppendText(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain text, with a tab\tkept", "plain text, with a tab\tkept"},
		{"a\r\nb", `a\r\nb`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"bell\a nul\x00 del\x7f", `bell\x07 nul\x00 del\x7f`},
		{"not utf-8 \xff\xc3", `not utf-8 \xff\xc3`},
		{"c1 \u009b31m", `c1 \u009b31m`},
		{"bidi \u202eevil\u2066", `bidi \u202eevil\u2066`},
		{"line\u2028separator", `line\u2028separator`},
		{"unicode kept: é ✓ \ufffd", "unicode kept: é ✓ \ufffd"},
	}
	for _, c := range cases {
		if got := string(appendText(nil, c.in)); got != c.want {
			t.Errorf("appendText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
