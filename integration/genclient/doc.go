// Package genclient is a Go client of the engine's HTTP API generated from
// its OpenAPI document (GET /deployment-engine/openapi.json) by a standard
// generator, oapi-codegen, with the configuration in oapi-codegen.yaml:
// the proof that other tools can generate a working client from the
// document. client.gen.go is the generator's output, never edited by hand;
// TestClientIsCurrent regenerates it from the document the code builds
// and fails when it differs (go test -run TestClientIsCurrent -update
// rewrites it). The end-to-end suite deploys through it.
package genclient
