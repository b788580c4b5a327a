// Command de-testbed brings test-bed nodes up and down for the demo, the
// quick start and a developer's own tries. It ships apart from the engine:
// the product binary carries no test bed.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/deployment-engine/engine/integration/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(testbed.CLI(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
