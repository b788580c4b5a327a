package steps

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/deployment-engine/engine/services/contract"
)

// CopyAction is the action of a copy's steps.
const CopyAction = "copy"

// CopySteps put content at path with mode on every node of groups, one
// step a node, one batch a group, each batch after the whole of the one
// before. The file travels as the step's own (the installer checks its
// size and SHA-256 on the node before it moves it into place); the step's
// script then prints the SHA-256 and size of the file the node has, which
// its kept output carries back (contract.CopyReport). Every step shares the
// one content; each has a hash of its deployment and node, so a copy is
// never found done from an earlier one.
func (in Builder) CopySteps(comp string, groups [][]string, path string, mode uint32, content []byte) ([]*Step, []contract.Batch) {
	sum := sha256.Sum256(content)
	file := contract.StepFile{Path: path, Mode: mode, Content: content, SHA256: hex.EncodeToString(sum[:])}
	script := contract.CopyReport(path)
	return in.fleetSteps(comp, groups, func(ip string) contract.Step {
		return contract.Step{Node: ip, Component: comp, Action: CopyAction, Files: []contract.StepFile{file}, Script: script,
			TimeoutS: contract.CopyTimeout, KeepOutput: true, Hash: Hash(CopyAction, in.ID, ip)}
	})
}

// CopyFromSteps read the file at path back from every node of groups, one
// step a node, one batch a group, as CopySteps put one. The installer runs
// the step's script itself (Step.ReadBack): the file goes to the bus's
// copies store, never into the step's output, which is its SHA-256 and
// size.
func (in Builder) CopyFromSteps(comp string, groups [][]string, path string) ([]*Step, []contract.Batch) {
	script := contract.CopyRead(path)
	return in.fleetSteps(comp, groups, func(ip string) contract.Step {
		return contract.Step{Node: ip, Component: comp, Action: CopyAction, Script: script, ReadBack: path,
			TimeoutS: contract.CopyTimeout, KeepOutput: true, Hash: Hash(CopyAction, in.ID, ip)}
	})
}
