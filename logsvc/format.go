package logsvc

import (
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

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
		b = appendField(b, orDash(l.Stream))
	} else {
		b = appendField(b, orDash(l.Deployment))
		b = append(b, ' ')
		b = appendField(b, orDash(l.Step))
		b = append(b, ' ')
		b = appendField(b, orDash(l.Stream))
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

// appendText appends s with its control characters escaped, so that one
// message is always one line of text: a line can neither forge another
// (\n, \r, U+2028) nor drive the terminal that shows the log (ESC, C1
// controls, bidi overrides). \n and \r become `\n` and `\r`, other C0
// controls and DEL `\xNN`, bytes that are not UTF-8 `\xNN`, and C1, bidi
// and line-separator characters `\uNNNN`. Tabs are kept: they are common in
// programs' output and move the cursor only along the line. A backslash
// is kept as is, so an escape is told from a line's own text by reading
// the program's output, not the log alone.
func appendText(b []byte, s string) []byte {
	i := 0
	for i < len(s) && (s[i] >= 0x20 && s[i] < 0x7f || s[i] == '\t') {
		i++
	}
	if i == len(s) {
		return append(b, s...)
	}
	b = append(b, s[:i]...)
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\n':
			b = append(b, `\n`...)
		case r == '\r':
			b = append(b, `\r`...)
		case r == '\t':
			b = append(b, '\t')
		case r == utf8.RuneError && size == 1, r < 0x20, r == 0x7f:
			b = append(b, `\x`...)
			b = append(b, hexDigits[s[i]>>4], hexDigits[s[i]&0xf])
		case r < 0xa0 && r >= 0x80, unicode.Is(unicode.Bidi_Control, r), r == '\u2028', r == '\u2029':
			b = fmt.Appendf(b, `\u%04x`, r)
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendField appends one of a line's bracketed fields (a deployment, a
// step, a stream): as is when it is one plain word, else quoted, so that
// a field cannot pass for the end of the brackets or for other fields.
func appendField(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '"' {
			return strconv.AppendQuote(b, s)
		}
	}
	return append(b, s...)
}

func appendDetail(b []byte, s string) []byte {
	if s == "" {
		return b
	}
	b = append(b, ": "...)
	return appendText(b, s)
}
