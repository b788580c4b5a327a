package contract

import (
	"slices"
	"strings"
)

// OutputRedactor takes a config's secrets out of text: what the nodes
// print (install output, command output, a service's own log lines) and
// what the engine renders (a plan's file diffs). The installer, the log
// service and the planner all use it, so a secret is hidden the same way
// wherever a line goes.
type OutputRedactor struct {
	values []string // longest first
}

// minRedacted is the shortest secret taken out of output: a shorter one
// would blank out ordinary words.
const minRedacted = 3

// OutputRedactor returns the redactor of c's secrets — every one Redact
// hides (MapSecrets walks them) — and of more values. A secret of several
// lines (a private key) is taken out where it stands whole, as in a
// command's output of several lines.
func (c Config) OutputRedactor(more ...string) OutputRedactor {
	return OutputRedactor{}.Also(c).With(more...)
}

// Also returns a redactor that takes out c's secrets too (an older
// config's, whose files a plan compares with).
func (r OutputRedactor) Also(c Config) OutputRedactor {
	var vs []string
	_, _ = c.MapSecrets(func(s string) (string, error) {
		vs = append(vs, s)
		return s, nil
	})
	return r.With(vs...)
}

// With returns a redactor that takes out values too.
func (r OutputRedactor) With(values ...string) OutputRedactor {
	out := OutputRedactor{values: slices.Clone(r.values)}
	for _, v := range values {
		if len(v) >= minRedacted && v != Redacted && !slices.Contains(out.values, v) {
			out.values = append(out.values, v)
		}
	}
	// A secret that holds another goes whole, before the other.
	slices.SortStableFunc(out.values, func(a, b string) int { return len(b) - len(a) })
	return out
}

// Redact replaces every secret in line with Redacted. Every place each
// secret stands is found in line as given, and places that overlap are
// replaced as one: replacing the secrets one after another let a value
// that overlaps a secret's start (one a caller chose, posted in a plan's
// config) break the secret before its turn, leaving the rest in clear.
func (r OutputRedactor) Redact(line string) string {
	type span struct{ from, to int }
	var spans []span
	for _, v := range r.values {
		for at := 0; ; {
			i := strings.Index(line[at:], v)
			if i < 0 {
				break
			}
			spans = append(spans, span{at + i, at + i + len(v)})
			at += i + 1
		}
	}
	if len(spans) == 0 {
		return line
	}
	slices.SortFunc(spans, func(a, b span) int { return a.from - b.from })
	var b strings.Builder
	last := 0
	for i := 0; i < len(spans); {
		from, to := spans[i].from, spans[i].to
		for i++; i < len(spans) && spans[i].from < to; i++ {
			to = max(to, spans[i].to)
		}
		b.WriteString(line[last:from])
		b.WriteString(Redacted)
		last = to
	}
	b.WriteString(line[last:])
	return b.String()
}
