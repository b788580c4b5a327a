package bosh

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/release"
)

// renderText renders one template in the box.
func renderText(ctx context.Context, text string) (Rendered, error) {
	job := &release.Job{Name: "t", Templates: []release.Template{{Source: "t.erb", Dest: "t.conf", Text: text}}}
	out, err := Render(ctx, []RenderJob{{Job: job, Spec: Spec{"name": "t", "properties": map[string]any{}}}})
	if err != nil {
		return Rendered{}, err
	}
	return out[0], nil
}

// withBox runs the test with Sandbox changed by set.
func withBox(t *testing.T, set func(*Box)) {
	t.Helper()
	old := Sandbox
	set(&Sandbox)
	t.Cleanup(func() { Sandbox = old })
}

// alive lists the processes whose command line holds marker.
func alive(t *testing.T, marker string) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), marker) {
			out = append(out, d+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the renderer's box needs root (tests run as root on the control machine)")
	}
}

// A hostile template runs `id`, reads a root-only file in a 0700 dir (the
// engine's data dir), connects to a loopback listener, reads the test's
// command line in /proc and leaves children behind, one of them in its own
// session: none of it gets anywhere. The
// box allows processes here (the default allows none) to show that the
// user, the network namespace and the PID namespace hold on their own.
func TestRenderBoxHostileTemplate(t *testing.T) {
	needRuby(t)
	needRoot(t)
	withBox(t, func(b *Box) { b.Procs = 64 })

	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "api-token")
	if err := os.WriteFile(secret, []byte("token-Zx81-never-shown"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	// Each probe prints what it got, or the error that stopped it.
	tmpl := fmt.Sprintf(`id=<%%= begin; `+"`id`"+`; rescue Exception => e; "failed #{e.class}"; end %%>
file=<%%= begin; File.read(%q); rescue Exception => e; "failed #{e.class}"; end %%>
sock=<%%= begin; require 'socket'; TCPSocket.new('127.0.0.1', %d).close; 'connected'; rescue Exception => e; "failed #{e.class}"; end %%>
env=<%%= ENV.keys.sort.join(',') %%>
host=<%%= begin; File.read('/proc/%d/cmdline'); rescue Exception => e; "failed #{e.class}"; end %%>
<%% pids = [Process.spawn('sleep', '7357.1', pgroup: true), Process.spawn('setsid', 'sleep', '7357.2')]; sleep 0.3 -%%>
children=<%%= pids.map { |p| Process.kill(0, p) rescue 0 }.join(',') %%>
`, secret, port, os.Getpid())
	got, err := renderText(context.Background(), tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if got.Error != "" || len(got.Files) != 1 {
		t.Fatalf("render: %+v", got)
	}
	out := got.Files[0].Content
	t.Logf("rendered:\n%s", out)
	for _, want := range []string{"id=uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n", "file=failed Errno::EACCES",
		"sock=failed Errno::ENETUNREACH", "env=HOME,LANG,PATH\n", "host=failed Errno::ENOENT", "children=1,1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	for _, bad := range []string{"uid=0", "token-Zx81", "connected"} {
		if strings.Contains(out, bad) {
			t.Errorf("the output holds %q", bad)
		}
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("the listener got %d connections", n)
	}
	// The children started (children=1,1 above); the renderer's end ended them.
	if left := alive(t, "sleep 7357."); len(left) > 0 {
		t.Errorf("children of the render outlived it: %v", left)
	}
}

// The default box leaves ruby no process to start: `id` never runs (ruby
// retries a fork that fails for want of processes each second, until the
// render's context ends).
func TestRenderBoxNoProcesses(t *testing.T) {
	needRuby(t)
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	got, err := renderText(ctx, "<%= `id` %>")
	if err == nil || !strings.Contains(err.Error(), "stopped: context deadline exceeded") {
		t.Fatalf("got %v %+v", err, got)
	}
}

// A render ends with its context, at its CPU limit, its memory limit and
// its output bound, each with an error that says which.
func TestRenderBounds(t *testing.T) {
	needRuby(t)
	needRoot(t)
	for _, tc := range []struct {
		name   string
		box    func(*Box)
		text   string
		cancel time.Duration // cancel the render's context after this
		within time.Duration // the render must return within this
		want   string        // in the error, or the job's error
	}{
		// The bounds are generous: the suite runs this beside the
		// end-to-end packages on a 2-core machine, where ruby's start and
		// the reap of its namespace took 15 s and more. They still tell
		// a working bound from a broken one: a render not cancelled runs
		// the sandbox's 30 s of CPU, and one whose CPU bound fails loops
		// until the test's own timeout.
		{"cancelled", func(b *Box) { b.Procs = 64 },
			"<% Process.spawn('sleep', '7357.3'); loop {} %>", 300 * time.Millisecond, 300*time.Millisecond + 10*time.Second, "context canceled"},
		{"cpu limit", func(b *Box) { b.CPU = time.Second }, "<% loop {} %>", 0, 25 * time.Second, "used its 1s of CPU time"},
		{"memory limit", nil, "<%= 'x' * (1 << 30) %>", 0, 25 * time.Second, "failed to allocate memory"},
		{"output bound", func(b *Box) { b.Output = 1 << 20 }, "<%= 'x' * (4 << 20) %>", 0, 25 * time.Second, "passed its bound of 1048576 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.box != nil {
				withBox(t, tc.box)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel > 0 {
				time.AfterFunc(tc.cancel, cancel)
			}
			start := time.Now()
			got, err := renderText(ctx, tc.text)
			took := time.Since(start)
			msg := got.Error
			if err != nil {
				msg = err.Error()
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("got %q (files %d), want %q", msg, len(got.Files), tc.want)
			}
			if took > tc.within {
				t.Errorf("took %s, want under %s", took, tc.within)
			}
			if left := alive(t, "sleep 7357."); len(left) > 0 {
				t.Errorf("children of the render outlived it: %v", left)
			}
		})
	}
}

// A render waits for a free renderer only as long as its context lets it.
func TestRenderSlots(t *testing.T) {
	needRuby(t)
	for range RenderSlots {
		slots <- struct{}{}
	}
	defer func() {
		for range RenderSlots {
			<-slots
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := renderText(ctx, "x")
	if err == nil || !strings.Contains(err.Error(), "waited for one of the 2 renderers") {
		t.Fatalf("got %v", err)
	}
}

// An engine that is not root refuses to render, unless told to render
// unboxed.
func TestRenderRefusedWithoutRoot(t *testing.T) {
	needRuby(t)
	old := geteuid
	geteuid = func() int { return 1000 }
	defer func() { geteuid = old }()
	_, err := renderText(context.Background(), "x")
	if err == nil || !strings.Contains(err.Error(), "not root") || !strings.Contains(err.Error(), "--render-unboxed") {
		t.Fatalf("got %v", err)
	}
	withBox(t, func(b *Box) { b.Unboxed = true })
	if got, err := renderText(context.Background(), "x<%= 1 + 1 %>"); err != nil || got.Files[0].Content != "x2" {
		t.Fatalf("unboxed: %v %+v", err, got)
	}
}
