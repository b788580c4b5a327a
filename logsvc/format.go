package logsvc

import (
	"fmt"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// The text of the store's lines: each function appends one line's body to
// b, which holds its time already; the ingest decides where it goes.

// appendComponent: a component went up or down on a node.
func appendComponent(b []byte, component, ip string, up bool, reason string) []byte {
	word := "down"
	if up {
		word = "up"
	}
	b = fmt.Appendf(b, "component %s on %s %s", component, ip, word)
	return appendDetail(b, reason)
}

// appendEngine: one of the engine's own operations.
func appendEngine(b []byte, e contract.EngineEvent) []byte {
	b = append(b, "engine "...)
	b = appendText(b, orDash(e.Kind))
	return appendDetail(b, e.Message)
}

// appendStepFailed: a step that failed, and whether it will be tried again.
func appendStepFailed(b []byte, e contract.StepEvent) []byte {
	b = append(b, "step "...)
	b = appendText(b, orDash(e.ID))
	b = append(b, " failed on "...)
	b = appendText(b, orDash(e.Node))
	b = append(b, " ("...)
	b = appendText(b, orDash(e.Component)+" "+orDash(e.Action))
	b = fmt.Appendf(b, ", deployment %s, attempt %d", e.Deployment, e.Attempt)
	if e.ExitCode != nil {
		b = fmt.Appendf(b, ", exit %d", *e.ExitCode)
	}
	if e.Final {
		b = append(b, ", final"...)
	} else {
		b = append(b, ", will retry"...)
	}
	b = append(b, ')')
	return appendDetail(b, e.Error)
}

// appendDeployment: a deployment started or finished.
func appendDeployment(b []byte, e contract.DeploymentEvent, started bool) []byte {
	b = append(b, "deployment "...)
	b = appendText(b, orDash(e.ID))
	if started {
		return append(b, " started"...)
	}
	b = append(b, " finished: "...)
	b = appendText(b, orDash(e.State))
	b = fmt.Appendf(b, ", %d changed", e.Changed)
	return appendDetail(b, e.Error)
}

// appendInstanceLine: a line of a component's output, install (its
// deployment and step) or runtime, after prefix (its node and component
// when it goes to local.log).
func appendInstanceLine(b []byte, prefix string, l contract.LogLine, runtime bool) []byte {
	b = append(b, prefix...)
	b = append(b, '[')
	if runtime {
		b = append(b, "runtime "...)
		b = appendText(b, orDash(l.Stream))
	} else {
		b = appendText(b, orDash(l.Deployment))
		b = append(b, ' ')
		b = appendText(b, orDash(l.Step))
		b = append(b, ' ')
		b = appendText(b, orDash(l.Stream))
	}
	b = append(b, "] "...)
	return appendText(b, l.Line)
}

func timeOr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendText appends s with line breaks escaped, so that one message is
// always one line and a line cannot forge another.
func appendText(b []byte, s string) []byte {
	if !strings.ContainsAny(s, "\r\n") {
		return append(b, s...)
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}

func appendDetail(b []byte, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, ": "...)
	return appendText(b, s)
}
