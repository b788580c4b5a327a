// Package steps builds the steps of a deployment from a config: a
// catalog's components, a BOSH release's jobs, a rollout, a re-apply or a
// rolling restart.
package steps

import "github.com/deployment-engine/engine/services/contract"

// NodeComponent names the steps that belong to a node rather than to one
// of its components. It cannot clash with a catalog's component names,
// which start with a letter.
const NodeComponent = "_node"

// Step is one step of a deployment with what it waits for.
type Step struct {
	Spec  contract.Step
	After []string
	Prio  int // lower runs first among a node's ready steps
	// For is the node whose instance the step changes when another node
	// runs it (a balancer's drain and ready of it): a node in maintenance
	// holds these steps too.
	For string
}

// ID names the step of action on comp at node, unique in a deployment.
func ID(node, comp, action string) string { return node + "/" + comp + "/" + action }
