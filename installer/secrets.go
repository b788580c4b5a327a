package installer

import (
	"context"
	"fmt"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// nodeAuth is how the installer logs in to the config's nodes: the kept
// root password only where it was given for (bus.LoadSecretHosts).
func (i *Installer) nodeAuth(ctx context.Context, cfg contract.Config) (contract.Auth, error) {
	return i.restrict(ctx, cfg.Properties.NodeAuth())
}

// restrict limits a's password to the nodes the stored record allows,
// unless the request already says where it may go.
func (i *Installer) restrict(ctx context.Context, a contract.Auth) (contract.Auth, error) {
	if a.Restricted || a.Password == "" {
		return a, nil
	}
	sh, err := bus.LoadSecretHosts(ctx, i.o.Res)
	if err != nil {
		return a, fmt.Errorf("which nodes the root password was given for: %w", err)
	}
	a.Restricted, a.PasswordHosts = true, sh.Hosts["root"]
	return a, nil
}

// secretFor is the value of a config secret a step asks for on node:
// only a secret given for that node leaves the engine.
func (i *Installer) secretFor(ctx context.Context, cfg contract.Config, name, node string) (string, error) {
	switch {
	case name == "upload" && i.o.AgentPassword == nil:
		// Without the agent secret the node gets no upload token: it
		// fetches what the engine keeps compiled, and puts nothing.
		return "", nil
	case name == "upload":
		return bus.UploadToken(i.o.AgentPassword(node)), nil
	case name == "agent" && i.o.AgentPassword == nil:
		return "", permanent{fmt.Errorf("this installer holds no agent secret: run it with the engine's data dir (its agent-secret)")}
	case name == "agent":
		return i.o.AgentPassword(node), nil
	}
	val, ok := cfg.Properties.Secrets()[name]
	if !ok {
		return "", permanent{fmt.Errorf("step asks for unknown secret %q", name)}
	}
	sh, err := bus.LoadSecretHosts(ctx, i.o.Res)
	if err != nil {
		return "", fmt.Errorf("which nodes the %s was given for: %w", name, err)
	}
	if *val != "" && !sh.Allowed(name, node) {
		return "", permanent{fmt.Errorf("the kept %s is sent only to the nodes it was given for, and %s is not one: post the config with the %s in clear to use it there", name, node, name)}
	}
	return *val, nil
}
