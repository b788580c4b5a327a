package main

import (
	"bytes"
	"context"
	"flag"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/planner/release"
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

func TestServeRefusesBadWebhookAllow(t *testing.T) {
	var stderr bytes.Buffer
	code := serve(context.Background(), []string{"--data", t.TempDir(), "--webhook-allow", "127.0.0.1/32,localhost"}, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), `"localhost" is not a network`) {
		t.Fatalf("serve --webhook-allow localhost: exit %d, %s", code, stderr.String())
	}
}

// The engine runs under a soft memory limit: the flag's floor, or the
// live heap and half again (at least 48 MiB) when that is more; GOMEMLIMIT stands unless the flag is
// given; 0 lifts it.
func TestServeMemoryLimit(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct{ floor, live, want int64 }{
		{100 * mib, 0, 100 * mib},
		{100 * mib, 40 * mib, 100 * mib},
		{100 * mib, 64 * mib, 112 * mib},
		{100 * mib, 500 * mib, 750 * mib},
	} {
		if got := memoryLimit(c.floor, c.live); got != c.want {
			t.Errorf("memoryLimit(%d MiB, live %d MiB) = %d MiB, want %d", c.floor/mib, c.live/mib, got/mib, c.want/mib)
		}
	}

	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	const untouched = 77 * mib
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	live := int64(s[0].Value.Uint64())
	for _, c := range []struct {
		name string
		args []string
		env  string
		want int64
	}{
		{"default", nil, "", memoryLimit(defaultMemoryLimitMB*mib, live)},
		{"flag", []string{"--memory-limit-mb", "300"}, "", memoryLimit(300*mib, live)},
		{"GOMEMLIMIT stands", nil, "200MiB", untouched},
		{"flag over GOMEMLIMIT", []string{"--memory-limit-mb", "90"}, "200MiB", memoryLimit(90*mib, live)},
		{"none", []string{"--memory-limit-mb", "0"}, "", math.MaxInt64},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", c.env)
			debug.SetMemoryLimit(untouched)
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			mb := fs.Int64("memory-limit-mb", defaultMemoryLimitMB, "")
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			keepMemoryLimit(ctx, fs, *mb)
			if got := debug.SetMemoryLimit(-1); got != c.want {
				t.Errorf("limit %d, want %d", got, c.want)
			}
		})
	}
	var stderr bytes.Buffer
	if code := serve(context.Background(), []string{"--memory-limit-mb", "-1"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "must not be negative") {
		t.Errorf("a negative limit: exit %d, %q", code, stderr.String())
	}
}

// The release limits' flags reach the store in bytes, their defaults the
// store's own; a limit below 1 is refused before the engine starts.
func TestServeReleaseLimits(t *testing.T) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	rel := releaseFlags(fs)
	if err := fs.Parse([]string{"--release-max-mb", "100", "--release-max-text-kb", "64", "--release-max-files", "50"}); err != nil {
		t.Fatal(err)
	}
	got, err := rel()
	want := release.Limits{}.WithDefaults()
	want.Upload, want.Text, want.Files, want.KeepFree = 100<<20, 64<<10, 50, 0
	if err != nil || got != want {
		t.Errorf("limits %+v, %v; want %+v", got, err, want)
	}
	var stderr bytes.Buffer
	if code := serve(context.Background(), []string{"--data", t.TempDir(), "--release-max-unpacked-mb", "0"}, &stderr); code != 2 || !strings.Contains(stderr.String(), "--release-max-unpacked-mb") {
		t.Errorf("--release-max-unpacked-mb 0: exit %d, %s", code, stderr.String())
	}
}
