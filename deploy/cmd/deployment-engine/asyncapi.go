package main

import (
	"context"
	"fmt"
	"io"

	"github.com/deployment-engine/engine/api"
)

func init() { commands["asyncapi"] = asyncAPICmd }

// asyncAPICmd: asyncapi prints the AsyncAPI 3.0 document of the engine's
// events on NATS, built in this process as the engine serves it (GET
// /deployment-engine/asyncapi.json): no engine needs to run.
func asyncAPICmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 0 {
		fmt.Fprintln(stderr, "usage: deployment-engine asyncapi   (prints the AsyncAPI 3.0 document of the engine's events)")
		return 2
	}
	doc, err := api.AsyncAPI(buildInfo())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	_, _ = stdout.Write(doc)
	return 0
}
