package main

import (
	"context"
	"io"

	"github.com/deployment-engine/engine/integration/testbed"
)

func init() {
	commands["testbed"] = func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		return testbed.CLI(ctx, args, stdout, stderr)
	}
}
