package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/deployment-engine/engine/api"
)

// agentBinaryName is the node agent's binary, which the engine looks for
// beside its own executable.
const agentBinaryName = "de-agent"

// agentBinary is the node agent's binary the engine serves to the nodes,
// opened and hashed once at start: the engine serves that open file, so a
// binary replaced on disk later is not served under the old SHA-256.
type agentBinary struct {
	path string
	f    *os.File
	api.AgentBinary
}

// openAgentBinary opens the agent binary at path, or beside the engine's
// executable when path is "". The error names the path and what to do:
// without the binary, deployments install no agent.
func openAgentBinary(path string) (*agentBinary, error) {
	if path == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("no node agent binary: cannot find the engine's own executable (name the agent's with --agent-binary): %w", err)
		}
		path = filepath.Join(filepath.Dir(self), agentBinaryName)
	}
	a, err := hashAgentBinary(path)
	if err != nil {
		return nil, fmt.Errorf("no node agent binary at %s (make build puts bin/de-agent beside bin/deployment-engine; or name it with --agent-binary): %w", path, err)
	}
	return a, nil
}

func hashAgentBinary(path string) (*agentBinary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	h := sha256.New()
	var n int64
	if err == nil {
		n, err = io.Copy(h, f)
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("%s is empty", path)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &agentBinary{path: path, f: f, AgentBinary: api.AgentBinary{SHA256: hex.EncodeToString(h.Sum(nil)), Content: f, Size: n, ModTime: st.ModTime()}}, nil
}
