package api

import (
	"context"
	"crypto/subtle"

	"github.com/deployment-engine/engine/services/contract"
)

// TokenLookup names the holder of an API token beside the engine's own:
// one token per person or tool, each revocable. ok is false for a token it
// does not know or that was revoked.
type TokenLookup interface {
	Lookup(token string) (name string, ok bool)
}

type actorKey struct{}

// withActor marks a request with who sent it.
func withActor(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, actorKey{}, name)
}

// actorOf is who sent the request: a token's name, "admin" for the
// engine's own token, "anonymous" without auth.
func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok {
		return a
	}
	return contract.ActorAnonymous
}

// identify names the holder of tok, or answers false.
func (s *server) identify(tok string) (string, bool) {
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.o.Token)) == 1 && s.o.Token != "" {
		return contract.ActorAdmin, true
	}
	if s.o.Tokens != nil {
		return s.o.Tokens.Lookup(tok)
	}
	return "", false
}
