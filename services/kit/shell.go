package kit

import "strings"

// ShellQuote quotes s as one word for sh and bash.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
