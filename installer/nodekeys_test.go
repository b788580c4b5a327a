package installer

import (
	"context"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// A node with a key of its own (properties.node_keys) is offered that key
// and no other: with the config's key unusable, the node with its own
// logs in, and a node without one is refused naming the config's key; a
// node's key changed makes another connection, not the pooled one.
func TestNodeKeys(t *testing.T) {
	e := transports[0].env(t)
	ctx := context.Background()
	auth := contract.Auth{Key: "/nonexistent/de-test-key", Keys: map[string]string{nodeIP: keyPath}}
	c, err := e.ins.dial(ctx, nodeIP, auth)
	if err != nil {
		t.Fatalf("the node's own key: %v", err)
	}
	c.Close()
	if _, err := e.ins.dial(ctx, fakeIP, auth); err == nil || !strings.Contains(err.Error(), "/nonexistent/de-test-key") {
		t.Fatalf("a node without a key of its own: %v, want the config's key named", err)
	}
	other := auth
	other.Keys = map[string]string{nodeIP: "/nonexistent/other"}
	if authID(auth) == authID(other) || authID(auth) == authID(contract.Auth{Key: auth.Key}) {
		t.Error("a node's own key does not count in the credentials' id: a pooled connection would outlive its change")
	}
}
