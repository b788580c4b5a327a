package installer

import (
	"errors"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/kit"
)

// nodeConn is a connection to a node that runs commands in sessions: an
// SSH connection (sshConn), or the node's agent over the bus (agentConn).
// Every wrapper, settle, lock, marker and kill is the same shell command
// on either: only the bytes travel differently.
type nodeConn interface {
	NewSession() (nodeSession, error)
}

// nodeSession runs one command, as an SSH session does.
type nodeSession interface {
	// StdoutPipe and StderrPipe, called before Start, are the command's
	// output; what has no pipe is discarded.
	StdoutPipe() (io.Reader, error)
	StderrPipe() (io.Reader, error)
	// Start starts cmd, a shell command line, with stdin (nil: none) on
	// its standard input.
	Start(cmd string, stdin io.Reader) error
	// Wait returns once the command has ended and its output was read:
	// nil, an *exitError with its status, or why the transport failed.
	Wait() error
	// Close ends the session: the command's pipes close, nothing kills it.
	Close() error
}

// exitError is a command that ended with a status other than 0.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// sshConn runs sessions on a pooled SSH connection.
type sshConn struct {
	c        *ssh.Client
	sessions prometheus.Counter
}

func (i *Installer) sshConn(c *ssh.Client) nodeConn {
	return sshConn{c: c, sessions: i.metrics.sshSessions}
}

func (s sshConn) NewSession() (nodeSession, error) {
	sess, err := s.c.NewSession()
	if err != nil {
		return nil, err
	}
	s.sessions.Inc()
	return sshSession{s: sess, sudo: s.c.User() != "root"}, nil
}

// sshSession runs one command; logged in as another user than root
// (Properties.NodeUsers), through sudo.
type sshSession struct {
	s    *ssh.Session
	sudo bool
}

func (s sshSession) StdoutPipe() (io.Reader, error) { return s.s.StdoutPipe() }
func (s sshSession) StderrPipe() (io.Reader, error) { return s.s.StderrPipe() }
func (s sshSession) Close() error                   { return s.s.Close() }

func (s sshSession) Start(cmd string, stdin io.Reader) error {
	s.s.Stdin = stdin
	if s.sudo {
		cmd = asRoot(cmd)
	}
	return s.s.Start(cmd)
}

// asRoot runs cmd as root through sudo, which must not ask for a password
// (-n: it fails at once, saying a password is required); its stdin, output
// and exit status pass through.
func asRoot(cmd string) string { return "sudo -n -- sh -c " + kit.ShellQuote(cmd) }

func (s sshSession) Wait() error {
	err := s.s.Wait()
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &exitError{code: ee.ExitStatus()}
	}
	return err
}

// runCmd runs cmd in a session of its own, its output discarded.
func runCmd(c nodeConn, cmd string) error {
	sess, err := c.NewSession()
	if err != nil {
		return err
	}
	defer sess.Close()
	if err := sess.Start(cmd, nil); err != nil {
		return err
	}
	return sess.Wait()
}
