package api

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// Role is what a token may do. The roles are ordered: each holds the ones
// below it.
type Role uint8

const (
	// RoleRead may call every GET route, follow event streams and
	// download a log.
	RoleRead Role = iota + 1
	// RoleOperate may also act on what runs: restart, stop, cancel a
	// deployment, switch auto-heal, hold a node in maintenance.
	RoleOperate
	// RoleDeploy may also change what runs and render releases: store,
	// check and plan a config, deploy, scale, roll back, take nodes over,
	// upload a release.
	RoleDeploy
	// RoleAdmin may do everything: the engine's own token holds it.
	RoleAdmin
)

// Roles are every role, lowest first.
var Roles = []Role{RoleRead, RoleOperate, RoleDeploy, RoleAdmin}

var roleNames = map[Role]string{RoleRead: "read", RoleOperate: "operate", RoleDeploy: "deploy", RoleAdmin: "admin"}

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// roleWrite is the name of the role before there were four: it held
// every change the API had, and reads as admin, so that a token keeps
// all it could do.
const roleWrite = "write"

// ParseRole reads a role's name: read, operate, deploy or admin; write,
// the role that held every change before there were four, reads as admin.
func ParseRole(s string) (Role, error) {
	if s == roleWrite {
		return RoleAdmin, nil
	}
	for _, r := range Roles {
		if s == r.String() {
			return r, nil
		}
	}
	return 0, fmt.Errorf("role %q: want read, operate, deploy or admin", contract.Clip(s))
}

// Grant is what a named token proves: its holder's name, its role, and
// the clusters it reaches (nil: every cluster).
type Grant struct {
	Name     string
	Role     Role
	Clusters []string
}

// TokenLookup names the holder of an API token beside the engine's own:
// one token per person or tool, each revocable, with its role and reach.
// ok is false for a token it does not know or that was revoked.
type TokenLookup interface {
	Lookup(token string) (g Grant, ok bool)
}

// identity is who sent a request, as its token proved.
type identity = Grant

// Reaches tells whether the grant reaches cluster.
func (g Grant) Reaches(cluster string) bool {
	return g.Clusters == nil || slices.Contains(g.Clusters, cluster)
}

// Permit is nil when the grant may make a request that needs the role
// need on cluster, else the refusal, naming what is missing: the role the
// token lacks, the cluster it does not reach, or both. It is the one
// check of a token's reach; a route on a named cluster passes that
// cluster, a route on no one cluster (the list of them) "".
func (g Grant) Permit(need Role, cluster string) error {
	var missing []string
	if g.Role < need {
		missing = append(missing, fmt.Sprintf("needs the %s role; token %s has %s", need, g.Name, g.Role))
	}
	if cluster != "" && !g.Reaches(cluster) {
		missing = append(missing, fmt.Sprintf("acts on cluster %s; token %s reaches only %s",
			contract.Clip(cluster), g.Name, strings.Join(g.Clusters, ", ")))
	}
	if missing == nil {
		return nil
	}
	return fmt.Errorf("%s (tokens are set in <data>/api-tokens)", strings.Join(missing, ", and "))
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
		return id.Name
	}
	return contract.ActorAnonymous
}

// identify names the holder of tok, its role and reach, or answers false.
// The engine's own token is admin on every cluster.
func (s *server) identify(tok string) (identity, bool) {
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.o.Token)) == 1 && s.o.Token != "" {
		return identity{Name: contract.ActorAdmin, Role: RoleAdmin}, true
	}
	if s.o.Tokens != nil {
		if g, ok := s.o.Tokens.Lookup(tok); ok {
			return g, true
		}
	}
	return identity{}, false
}
