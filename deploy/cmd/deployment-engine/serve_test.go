package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestServeRefusesUnknownService(t *testing.T) {
	var stderr bytes.Buffer
	code := serve(context.Background(), []string{"--data", t.TempDir(), "--only", "api,planer"}, &stderr)
	if code != 2 {
		t.Fatalf("serve --only api,planer exited %d, want 2", code)
	}
	want := `serve: --only: unknown service "planer"; the services are api, planner, installer, monitor, notify, logs`
	if got := strings.TrimSpace(stderr.String()); got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}
