// Package enginetest runs the real engine inside a test's process, for
// the tests of the packages built on it (the CLI, the console).
package enginetest

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/deploy/engine"
)

// Start serves the engine with o on 127.0.0.1 (a free port, logs
// discarded, a temp data dir when o has none) and DE_API_TOKEN set to
// token, waits up to 30 s for it to listen and returns its address. stop
// ends it and reports an error Serve returned; calling it again does
// nothing.
func Start(t testing.TB, token string, o engine.Options) (addr string, stop func()) {
	t.Helper()
	t.Setenv("DE_API_TOKEN", token)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	o.Listen, o.Logger = "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.Ready = func(a string) { ready <- a }
	go func() { done <- engine.Serve(ctx, o) }()
	select {
	case a := <-ready:
		var once sync.Once
		return a, func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
		}
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("engine did not start")
	}
	return "", func() {}
}
