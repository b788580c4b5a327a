package engine

import (
	"strings"

	"github.com/deployment-engine/engine/monitor/monit"
	"github.com/deployment-engine/engine/services/kit"
)

// monitControl is the script that runs a monit action on a node and waits
// for its outcome there (monit answers at once and acts later).
func monitControl(action, process string) string {
	var b strings.Builder
	b.WriteString("set --")
	for _, a := range monit.ControlArgs(action, process, monit.Wait(action), monit.MarkDir) {
		b.WriteString(" " + kit.ShellQuote(a))
	}
	b.WriteString("\n" + monit.ControlScript)
	return b.String()
}
