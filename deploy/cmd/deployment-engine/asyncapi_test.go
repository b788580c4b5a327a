package main

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/deployment-engine/engine/deploy/engine"
)

// asyncapi prints the events' AsyncAPI document, with no engine running;
// its server's default port is the one the engine's NATS listens on.
func TestAsyncAPICommand(t *testing.T) {
	r := cli(t, "asyncapi")
	var doc struct {
		AsyncAPI string         `json:"asyncapi"`
		Channels map[string]any `json:"channels"`
		Servers  struct {
			Engine struct {
				Protocol  string `json:"protocol"`
				Variables struct {
					Port struct {
						Default string `json:"default"`
					} `json:"port"`
				} `json:"variables"`
			} `json:"engine"`
		} `json:"servers"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &doc) != nil {
		t.Fatalf("asyncapi: %+v", r)
	}
	if doc.AsyncAPI != "3.0.0" || doc.Channels["logLine"] == nil || doc.Servers.Engine.Protocol != "nats" {
		t.Fatalf("asyncapi %q, %d channels, server %+v", doc.AsyncAPI, len(doc.Channels), doc.Servers.Engine)
	}
	if got, want := doc.Servers.Engine.Variables.Port.Default, strconv.Itoa(engine.DefaultAgentPort); got != want {
		t.Errorf("the document's NATS port is %s, the engine's %s", got, want)
	}
	if r := cli(t, "asyncapi", "extra"); r.code != 2 {
		t.Fatalf("asyncapi extra: %+v", r)
	}
}
