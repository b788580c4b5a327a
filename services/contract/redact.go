package contract

import "strings"

// OutputRedactor takes a config's secrets out of what the nodes print:
// install output, command output, a service's own log lines. The installer
// and the log service both use it, so a secret is hidden the same way
// wherever a line goes.
type OutputRedactor struct {
	values []string
}

// minRedacted is the shortest secret taken out of output: a shorter one
// would blank out ordinary words.
const minRedacted = 3

// OutputRedactor returns the redactor of c's secrets. A secret of several
// lines (a private key) is taken out where it stands whole, as in a
// command's output of several lines.
func (c Config) OutputRedactor() OutputRedactor {
	var r OutputRedactor
	for _, v := range c.Properties.Secrets() {
		if len(*v) >= minRedacted {
			r.values = append(r.values, *v)
		}
	}
	return r
}

// Redact replaces every secret in line with Redacted.
func (r OutputRedactor) Redact(line string) string {
	for _, v := range r.values {
		line = strings.ReplaceAll(line, v, Redacted)
	}
	return line
}
