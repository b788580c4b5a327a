// Package nodeexec is the wire of the commands the installer runs on a
// node through the node's agent instead of an SSH session; package execd
// is the agent's side of it.
//
// The installer asks on de.node.<ip>.hello for the agent's version, then
// sends a sealed Request on de.node.<ip>.exec: a shell command line and its
// stdin, as an SSH session carries them. The agent answers once (Reply:
// started, or refused and nothing ran), then streams the command's output,
// a heartbeat while it runs, and its exit status as numbered Out messages
// on de.node.<ip>.exec-out.<run>, which the installer subscribed to before
// it asked. A Close on de.node.<ip>.exec-close closes the command's pipes,
// as a dropped SSH session does; it does not kill the command.
//
// Only the engine can give a node work: a request is sealed with
// HMAC-SHA256 under a key derived from the node's agent password (Key),
// which the engine derives from its agent secret and the agent reads from
// its password file, and which no other node's agent holds. The body
// carries its node, a time and a nonce; the agent refuses a request for
// another node, one older than MaxSkew, and one whose nonce it has seen
// (Guard). All of it is core NATS: nothing is stored, and no stream
// captures de.node subjects.
//
// A Trust on de.node.<ip>.trust, sealed the same way under TrustKey, gives
// the agent the CA certificates it verifies the engine's NATS with while
// the agents' CA rotates (trust.go).
package nodeexec

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Bounds of a request, which the agent enforces and the installer keeps
// to (it runs a command over SSH instead when its stdin is larger).
const (
	// MaxStdin bounds a request's stdin: a chain script with its inline
	// files, a file sent on its own.
	MaxStdin = 4 << 20
	// MaxSkew is how far a request's time may be from the agent's clock.
	MaxSkew = 60 * time.Second
	// MaxTimeout caps the deadline of one command.
	MaxTimeout = 24 * time.Hour
	// Beat is how often the agent says a command still runs; an installer
	// that hears nothing for several beats takes the agent for dead.
	Beat = 3 * time.Second
)

// Hello is the agent's answer on de.node.<ip>.hello.
type Hello struct {
	V       int    `json:"v"`
	Version string `json:"version"`
	// MaxStdin is the largest stdin the agent takes; 0 when it runs no
	// commands.
	MaxStdin int `json:"max_stdin"`
	// Started is when the agent's command service started: an agent
	// that failed a command and was started again since is trusted anew.
	Started time.Time `json:"started,omitzero"`
}

// Request asks the agent to run Cmd as the node's SSH server would (the
// login shell's -c), with Stdin on its standard input.
type Request struct {
	V    int    `json:"v"`
	Node string `json:"node"`
	// Run names the command: its output goes to ExecOutput(Node, Run).
	Run   string `json:"run"`
	Cmd   string `json:"cmd,omitempty"`
	Stdin []byte `json:"stdin,omitempty"`
	// Read, instead of Cmd, asks the agent for what one of the engine's
	// read-only scripts prints (ReadMarkers, ReadProbe), which it reads in
	// its own process: every plan reads every node's markers, every deploy
	// checks every node, and the script's shell is most of what either
	// costs the node.
	Read string `json:"read,omitempty"`
	// Chain, instead of Cmd, asks the agent to run a chain of steps
	// itself (chain.go).
	Chain     *Chain `json:"chain,omitempty"`
	TimeoutMS int64  `json:"timeout_ms"`
	// Time (Unix milliseconds) and Nonce make each sealed request good
	// once, and only for a while.
	Time  int64  `json:"time"`
	Nonce string `json:"nonce"`
}

// The reads an agent answers itself.
const (
	// ReadMarkers prints what nodefs.MarkersScript prints.
	ReadMarkers = "markers"
	// ReadProbe prints what the installer's probe script prints with
	// nothing to resolve, fetch, unclaim or leave.
	ReadProbe = "probe"
)

// Reply is the agent's one answer to a Request: Error set when it refused
// it and ran nothing.
type Reply struct {
	V       int    `json:"v"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Out is one message of a command's output stream, numbered from 1 in the
// order the agent publishes them: a gap is a lost message.
type Out struct {
	Seq uint64 `json:"seq"`
	// Stream ("stdout" or "stderr") and Data: a chunk of output.
	Stream string `json:"stream,omitempty"`
	Data   []byte `json:"data,omitempty"`
	// Beat: the command still runs.
	Beat bool `json:"beat,omitempty"`
	// Exit is the command's status once it ended and both its streams
	// reached their end: 128+n when signal n killed it. Error instead
	// says why no status will come (the agent's own deadline killed it).
	Exit  *int   `json:"exit,omitempty"`
	Error string `json:"error,omitempty"`
}

// Close closes a command's pipes, as a dropped SSH session does.
type Close struct {
	Run string `json:"run"`
}

// Key is the sealing key of the node ip's requests, derived from the
// node's agent password.
func Key(agentPassword, ip string) []byte {
	m := hmac.New(sha256.New, []byte(agentPassword))
	m.Write([]byte("deployment-engine exec key v1\x00" + ip))
	return m.Sum(nil)
}

// sigLen is the hex HMAC-SHA256 that starts a sealed message.
const sigLen = 2 * sha256.Size

// ErrSignature is a message that is not sealed with the node's key.
var ErrSignature = errors.New("the request is not signed by this node's engine")

// Seal prefixes body with its signature: "<hex HMAC>\n<body>".
func Seal(key, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	out := make([]byte, 0, sigLen+1+len(body))
	out = hex.AppendEncode(out, m.Sum(nil))
	out = append(out, '\n')
	return append(out, body...)
}

// Open checks msg's signature and returns its body.
func Open(key, msg []byte) ([]byte, error) {
	if len(key) == 0 || len(msg) < sigLen+1 || msg[sigLen] != '\n' {
		return nil, ErrSignature
	}
	got := make([]byte, sha256.Size)
	if _, err := hex.Decode(got, msg[:sigLen]); err != nil {
		return nil, ErrSignature
	}
	body := msg[sigLen+1:]
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(got, m.Sum(nil)) {
		return nil, ErrSignature
	}
	return bytes.Clone(body), nil
}

// Guard refuses requests that are stale or seen before. It remembers each
// nonce for twice MaxSkew: an older copy is stale anyway.
type Guard struct {
	mu   sync.Mutex
	seen map[string]time.Time
	last time.Time // when it last forgot old nonces
}

// Check admits a request made at t with nonce, once, when now is within
// MaxSkew of t.
func (g *Guard) Check(nonce string, t, now time.Time) error {
	if d := now.Sub(t); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("the request was made at %s, %s from this node's clock (more than %s): refused as stale", t.UTC().Format(time.RFC3339), d.Round(time.Second), MaxSkew)
	}
	if len(nonce) < 16 || len(nonce) > 64 {
		return errors.New("the request has no usable nonce")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.seen == nil {
		g.seen = map[string]time.Time{}
	}
	if now.Sub(g.last) > MaxSkew/4 {
		for n, at := range g.seen {
			if now.Sub(at) > 2*MaxSkew {
				delete(g.seen, n)
			}
		}
		g.last = now
	}
	if _, ok := g.seen[nonce]; ok {
		return errors.New("the request was seen before: refused as a replay")
	}
	g.seen[nonce] = now
	return nil
}
