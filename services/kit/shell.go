package kit

import "strings"

// ShellQuote quotes s as one word for sh and bash.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// ShellPipe is bash that opens fd (a descriptor, "6", or a variable's
// redirection, "{r}") on the read end of a pipe that no one writes to, for
// a shell to wait on until a process it hands the write end (opened
// through /proc/self/fd) exits or a read's timeout passes. Bash 5.1 and
// later make a short here-string a pipe (its one line is read off): no
// process. Older bash writes a here-string to a file; there a process
// substitution makes the pipe, at the cost of a fork.
func ShellPipe(fd string) string {
	ref := fd
	if v, ok := strings.CutPrefix(fd, "{"); ok {
		ref = "$" + strings.TrimSuffix(v, "}")
	}
	return `exec ` + fd + `<<< ''
if [ -p /proc/self/fd/` + ref + ` ]; then read -r -u ` + ref + ` _; else exec ` + fd + `<&-; exec {de_pp}<> <(:); exec ` + fd + `</proc/self/fd/$de_pp {de_pp}>&-; fi
`
}
