package nodeexec

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// A Chain is a node's consecutive steps, which the agent runs itself
// rather than as one shell script (the installer's chain script, which an
// SSH session runs). It keeps what the script keeps, on the node and in
// the output: the same control lines, each carrying Nonce, on both
// streams and in the same order with the steps' own lines; the same
// markers, owner check, run records, locks and files. What the script does
// with builtins the agent does in its own process (markers, the owner,
// files, the lock, the deadline); what it does with a process, the agent
// does with one too (a step's shell, its Holds, settling an earlier run,
// reaping one past its deadline), from the shell the installer sends.
// The script's own processes — its shell, the copy of its text, its
// pipe, the file checks and moves, a flock and a shell per step — are
// what it saves: most of a change's work on a node.
type Chain struct {
	Nonce string      `json:"nonce"`
	Steps []ChainStep `json:"steps"`
	// CgroupRoots are where a step's run may have a cgroup of its own
	// (deployment-engine/<key>.<pgid> under one of them), removed once
	// the run ends by itself.
	CgroupRoots []string `json:"cgroup_roots,omitempty"`
}

// ChainStep is one step of a Chain.
type ChainStep struct {
	// Key names the step's marker, lock and run record (nodefs.MarkerName).
	Key        string      `json:"key"`
	Hash       string      `json:"hash"`
	Deployment string      `json:"deployment"`
	Holds      string      `json:"holds,omitempty"`
	Claim      bool        `json:"claim,omitempty"`
	Engine     string      `json:"engine,omitempty"`
	Files      []ChainFile `json:"files,omitempty"`
	// Settle is the shell that waits for or kills an earlier run of the
	// step, run when its run record names a process group.
	Settle string `json:"settle"`
	// Run is the shell that runs the step with its lock as fd 9, its
	// script in $DE_S and its deadline (Unix seconds) in $DE_UNTIL.
	Run    string `json:"run"`
	Script string `json:"script"`
	// Secs is the step's deadline: TERM to its process group, KILL 5 s
	// later.
	Secs int `json:"secs"`
	// Reap is the shell that kills what a run past its deadline left
	// ($1: its process group).
	Reap string `json:"reap"`
	// Noop says the step's script does nothing (an upload's files with
	// no check to run): under its lock the agent writes its marker
	// itself, "<hash> <deployment>", as the script's shell would on its
	// success, and starts no shell.
	Noop bool `json:"noop,omitempty"`
}

// ChainFile is a file a step installs before its script runs, checked
// against its SHA-256 (hex) before it is moved into place.
type ChainFile struct {
	Path    string `json:"path"`
	Mode    uint32 `json:"mode"`
	SHA256  string `json:"sha256"`
	Content []byte `json:"content"`
}

// Check refuses a chain the agent must not run: no steps, a key or path
// that is not plain, a deadline out of bounds, more file content than
// MaxStdin.
func (c *Chain) Check() error {
	if len(c.Nonce) < 16 || len(c.Nonce) > 64 || strings.ContainsAny(c.Nonce, " \t\n") {
		return errors.New("the chain has no usable nonce")
	}
	if len(c.Steps) == 0 {
		return errors.New("the chain has no steps")
	}
	size := 0
	for _, s := range c.Steps {
		if s.Key == "" || strings.ContainsAny(s.Key, "/\x00\n ") || s.Key == "." || s.Key == ".." {
			return fmt.Errorf("bad step key %q", contract.Clip(s.Key))
		}
		if s.Secs <= 0 || s.Secs > int(MaxTimeout.Seconds()) || strings.TrimSpace(s.Run) == "" {
			return fmt.Errorf("step %s: no deadline or nothing to run", s.Key)
		}
		for _, f := range s.Files {
			if !path.IsAbs(f.Path) || path.Clean(f.Path) != f.Path || strings.ContainsAny(f.Path, "\x00\n") || f.Mode > 0o7777 || len(f.SHA256) != 64 {
				return fmt.Errorf("step %s: bad file %q", s.Key, contract.Clip(f.Path))
			}
			size += len(f.Content)
		}
	}
	for _, r := range c.CgroupRoots {
		if !path.IsAbs(r) || path.Clean(r) != r {
			return fmt.Errorf("bad cgroup root %q", contract.Clip(r))
		}
	}
	if size > MaxStdin {
		return fmt.Errorf("the chain's files are %d bytes, over the agent's bound of %d", size, MaxStdin)
	}
	return nil
}
