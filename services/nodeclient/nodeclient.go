// Package nodeclient is the one way the engine's services reach a node:
// through the installer, which alone holds the config's SSH credentials
// (probe, exec), or through the node's agent while it reports.
package nodeclient

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Grace is how long past a script's own timeout Exec waits for the
// installer's answer: the installer kills the script on the node first.
const Grace = 5 * time.Second

// AnswerError is the installer answering a request with an error code:
// it ran, but could not do what was asked.
type AnswerError struct {
	Code int
	Msg  string
}

func (e *AnswerError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("the installer answered %d", e.Code)
	}
	return fmt.Sprintf("the installer answered %d: %s", e.Code, e.Msg)
}

// request sends a command to the installer and decodes its answer into
// out. A bus failure comes back as kit.Request's error (no installer,
// deadline), an error code as *AnswerError.
func request(ctx context.Context, nc *nats.Conn, subj string, in, out any) error {
	rep, err := kit.Request(ctx, nc, subj, in)
	if err != nil {
		return err
	}
	if rep.Code != 200 {
		var eb contract.ErrorBody
		_ = json.Unmarshal(rep.Body, &eb)
		return &AnswerError{Code: rep.Code, Msg: eb.Error}
	}
	if err := json.Unmarshal(rep.Body, out); err != nil {
		return fmt.Errorf("unreadable answer from the installer: %w", err)
	}
	return nil
}

// Exec runs one of the engine's own short scripts on node ip over SSH
// (de.cmd.installer.exec), killed on the node after timeout; the answer is
// waited for Grace longer. The reply's Error and ExitCode say how the
// script ended; err is for not reaching the installer or its refusal.
func Exec(ctx context.Context, nc *nats.Conn, ip, script string, timeout time.Duration) (contract.ExecReply, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout+Grace)
	defer cancel()
	var r contract.ExecReply
	err := request(ctx, nc, subject.InstallerExec(), contract.Exec{V: contract.Version, Node: ip, Script: script, TimeoutS: int(timeout / time.Second)}, &r)
	return r, err
}

// Probe asks the installer to contact nodes (de.cmd.installer.probe): one
// result per node, in the order asked. ctx bounds the wait.
func Probe(ctx context.Context, nc *nats.Conn, p contract.Probe) ([]contract.ProbeResult, error) {
	p.V = contract.Version
	var r contract.ProbeReply
	if err := request(ctx, nc, subject.InstallerProbe(), p, &r); err != nil {
		return nil, err
	}
	return r.Nodes, nil
}

// Missed is how many of its heartbeat intervals a node's agent may miss
// before the engine stops counting on it (monitor's default).
const Missed = 3

// Reporting tells whether a node's agent, last heard at seen with hb,
// reported within its allowed silence: missed of its intervals. A node
// whose agent reports is reached through it; any other over SSH.
func Reporting(hb contract.Heartbeat, seen, now time.Time, missed int) bool {
	if missed <= 0 {
		missed = Missed
	}
	iv := time.Duration(max(hb.IntervalS, 1)) * time.Second
	return now.Sub(seen) <= time.Duration(missed)*iv
}
