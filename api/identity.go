package api

import (
	"context"
	"crypto/subtle"
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

// Role is what a token may do. The roles are ordered: each holds the ones
// below it.
type Role uint8

const (
	// RoleRead may read every route and follow event streams.
	RoleRead Role = iota + 1
	// RoleWrite may also change state and render releases: store a
	// config, plan, deploy, scale, restart, stop, cancel, roll back,
	// switch auto-heal, upload a release.
	RoleWrite
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// ParseRole reads a role's name: read or write.
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "write":
		return RoleWrite, nil
	}
	return 0, fmt.Errorf("role %q: want read or write", s)
}

// TokenLookup names the holder of an API token beside the engine's own:
// one token per person or tool, each revocable, with its role. ok is false
// for a token it does not know or that was revoked.
type TokenLookup interface {
	Lookup(token string) (name string, role Role, ok bool)
}

// identity is who sent a request, as its token proved.
type identity struct {
	name string
	role Role
}

type identityKey struct{}

// withIdentity marks a request with who sent it.
func withIdentity(ctx context.Context, id identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

func identityOf(ctx context.Context) (identity, bool) {
	id, ok := ctx.Value(identityKey{}).(identity)
	return id, ok
}

// actorOf is who sent the request: a token's name, "admin" for the
// engine's own token, "anonymous" without auth.
func actorOf(ctx context.Context) string {
	if id, ok := identityOf(ctx); ok {
		return id.name
	}
	return contract.ActorAnonymous
}

// identify names the holder of tok and its role, or answers false. The
// engine's own token holds every role.
func (s *server) identify(tok string) (identity, bool) {
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.o.Token)) == 1 && s.o.Token != "" {
		return identity{name: contract.ActorAdmin, role: RoleWrite}, true
	}
	if s.o.Tokens != nil {
		if name, role, ok := s.o.Tokens.Lookup(tok); ok {
			return identity{name: name, role: role}, true
		}
	}
	return identity{}, false
}
