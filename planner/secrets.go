package planner

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// secretHosts checks that every kept secret of cfg goes only to nodes it
// was given for, and returns the record to keep once cfg is stored. given
// names the secrets that came in clear: they are given for every node of
// cfg. A kept root password is withheld from a new node that a key can
// log in to; without a key, and for the adduser password, a new node is a
// problem that names it.
func (p *Planner) secretHosts(ctx context.Context, cfg contract.Config, given map[string]bool) (contract.SecretHosts, []contract.Problem, error) {
	old, err := bus.LoadSecretHosts(ctx, p.o.Res)
	if err != nil {
		return old, nil, err
	}
	next := contract.SecretHosts{V: contract.Version, Hosts: map[string][]string{}}
	var problems []contract.Problem
	for _, name := range contract.OfferedSecrets {
		if given[name] {
			next.Hosts[name] = cfg.Nodes()
			continue
		}
		next.Hosts[name] = old.Hosts[name]
		if !cfg.UsesSecret(name) || (name == "root" && cfg.Properties.Key != "") {
			continue
		}
		for _, ip := range cfg.Nodes() {
			if !old.Allowed(name, ip) {
				problems = append(problems, contract.Problem{Path: "properties." + name, IP: ip,
					Reason: fmt.Sprintf("%s is new: the kept %s goes only to the nodes it was given for; send it in clear in this config to use it on %s%s",
						ip, secretName(name), ip, map[bool]string{true: " (or give a key)", false: ""}[name == "root"])})
			}
		}
	}
	return next, problems, nil
}

func secretName(name string) string {
	if name == "root" {
		return "root password"
	}
	return "user password"
}

type givenForKey struct{}

// withGivenFor marks ctx with nodes the root password was just given for,
// before the record says so: the pre-checks of the config that gives it.
func withGivenFor(ctx context.Context, nodes []string) context.Context {
	return context.WithValue(ctx, givenForKey{}, nodes)
}

// probeAuth is how the installer may log in to the nodes for the planner:
// the root password only where it was given for.
func (p *Planner) probeAuth(ctx context.Context, cfg contract.Config) (contract.Auth, error) {
	a := cfg.Properties.NodeAuth()
	a.Restricted = true
	if a.Password == "" {
		return a, nil
	}
	sh, err := bus.LoadSecretHosts(ctx, p.o.Res)
	if err != nil {
		return a, err
	}
	a.PasswordHosts = slices.Clone(sh.Hosts["root"])
	if extra, ok := ctx.Value(givenForKey{}).([]string); ok {
		a.PasswordHosts = append(a.PasswordHosts, extra...)
	}
	return a, nil
}

// digest is the keyed digest of a secret for step hashes: HMAC-SHA256
// with the engine's key, never the secret itself nor a plain hash of it
// (a short password's plain hash is a lookup away from the password).
func (p *Planner) digest(name, value string) string {
	m := hmac.New(sha256.New, p.secretKey)
	m.Write([]byte("step-secret\x00" + name + "\x00" + value))
	return hex.EncodeToString(m.Sum(nil))
}
