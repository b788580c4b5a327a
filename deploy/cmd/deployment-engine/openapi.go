package main

import (
	"context"
	"fmt"
	"io"

	"github.com/deployment-engine/engine/api"
)

func init() { commands["openapi"] = openAPICmd }

// openAPICmd: openapi prints the API's OpenAPI 3.1 document, built in
// this process from the same route table the engine serves it from (GET
// /deployment-engine/openapi.json): no engine needs to run.
func openAPICmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: deployment-engine openapi   (prints the API's OpenAPI 3.1 document)")
		return 2
	}
	doc, err := api.OpenAPI(buildInfo())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	_, _ = stdout.Write(doc)
	return 0
}
