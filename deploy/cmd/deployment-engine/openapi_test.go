package main

import (
	"encoding/json"
	"testing"
)

// openapi prints the OpenAPI document, with no engine running.
func TestOpenAPICommand(t *testing.T) {
	r := cli(t, "openapi")
	var doc struct {
		OpenAPI string         `json:"openapi"`
		Paths   map[string]any `json:"paths"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &doc) != nil {
		t.Fatalf("openapi: %+v", r)
	}
	if doc.OpenAPI != "3.1.0" || doc.Paths["/deployment-engine/deploy"] == nil {
		t.Fatalf("openapi %q, %d paths", doc.OpenAPI, len(doc.Paths))
	}
	if r := cli(t, "openapi", "extra"); r.code != 2 {
		t.Fatalf("openapi extra: %+v", r)
	}
}
