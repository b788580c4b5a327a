package console

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deployment-engine/engine/deploy/engine"
	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/mirror"
)

// TestConsoleOnTestBed is the whole walk on real nodes: a two-node test
// bed, the starter catalog's mirror, the engine listening on the bed's
// bridge, and the console in Chromium doing what an operator does: submit
// the config with node checks on, deploy and watch it to the end, then
// status with restart and stop, and scale-out onto the second node. It
// needs root (the nodes are network namespaces) and an apt that can fetch
// the starter packages for the mirror; it is skipped otherwise, or under
// -short.
func TestConsoleOnTestBed(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the test bed walk installs packages on real nodes")
	}
	if err := testbed.Check(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bed, err := testbed.Up(ctx, testbed.Options{Name: "console", Nodes: 2})
	if err != nil {
		t.Fatalf("test bed: %v", err)
	}
	t.Cleanup(func() {
		if err := bed.Down(); err != nil {
			t.Errorf("test bed down: %v", err)
		}
	})
	n0, n1 := bed.Nodes[0].IP, bed.Nodes[1].IP

	data := t.TempDir()
	cat, err := catalog.Load("starter", "")
	if err != nil {
		t.Fatal(err)
	}
	// A mirror kept between runs saves the download (DE_MIRROR_CACHE).
	mdir := filepath.Join(data, "mirror")
	if c := os.Getenv("DE_MIRROR_CACHE"); c != "" {
		mdir = c
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	if err := mirror.Sync(sctx, cat, mdir, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatalf("cannot fill the mirror (the control machine needs apt access for this walk): %v", err)
	}
	if mdir != filepath.Join(data, "mirror") {
		if err := os.Symlink(mdir, filepath.Join(data, "mirror")); err != nil {
			t.Fatal(err)
		}
	}

	// The engine listens on the bed's bridge: the nodes fetch from its
	// mirror there, and their agents reach its NATS.
	httpPort, natsPort := freePort(t, bed.Home), freePort(t, bed.Home)
	t.Setenv("DE_API_TOKEN", token)
	// The in-process engine serves the real agent binary to the nodes.
	agentBin := harness.AgentBinary(t)
	ectx, stop := context.WithCancel(ctx)
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- engine.Serve(ectx, engine.Options{Listen: net.JoinHostPort(bed.Home, strconv.Itoa(httpPort)), DataDir: data,
			NATSListen: net.JoinHostPort(bed.Home, strconv.Itoa(natsPort)), AgentBinary: agentBin,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Ready: func(a string) { addr <- a }})
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		stop()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		stop()
		t.Fatal("engine did not start")
	}
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	b := newBrowser(t)
	b.signIn(base, "Status")

	t.Run("config with node checks", func(t *testing.T) {
		b.t = t
		b.run("open config", chromedp.Navigate(base+"/#/config"))
		b.waitText("#config-empty", "No config stored yet")
		row1 := ".comp-row:nth-child(1)"
		b.run("fill the form",
			chromedp.SendKeys(chromedp.CSS(row1+" .comp-input"), "web"),
			chromedp.SendKeys(chromedp.CSS(row1+" .ip-input"), n0),

			chromedp.SetValue(chromedp.ID("prop-catalog"), "starter"),
			chromedp.SendKeys(chromedp.ID("prop-domain"), "console.test"),
			chromedp.SendKeys(chromedp.ID("prop-home"), bed.Home),
			chromedp.SendKeys(chromedp.ID("prop-key"), bed.KeyPath),
			chromedp.SetValue(chromedp.ID("prop-checkdisk"), "0"),
			chromedp.SetValue(chromedp.ID("prop-adduser"), "0"),
			chromedp.Click(chromedp.ID("config-save")))
		b.waitTextFor("#config-stored", "Every node was checked", 2*time.Minute)
		b.waitText("#config-stored", n0)
	})

	t.Run("deploy to the end", func(t *testing.T) {
		b.t = t
		b.run("open deploy", chromedp.Navigate(base+"/#/deploy"), chromedp.WaitVisible(chromedp.ID("deploy-start")))
		b.run("deploy", chromedp.Click(chromedp.ID("deploy-start")))
		// The plan comes first: every node gets its steps; then the operator confirms.
		b.waitTextFor("#deploy-plan", n0, time.Minute)
		b.waitText("#plan-summary", "action(s)")
		b.run("confirm the plan", chromedp.Click(chromedp.ID("deploy-confirm")))
		b.waitText("#deploy-progress", "d-")
		waitDeployment(t, b, 20*time.Minute)
		b.waitText("#steps-table", n0)
		b.waitText("#deploy-log", n0)
		var failed int
		b.eval(`document.querySelectorAll("#steps-table .badge.s-failed").length`, &failed)
		if failed != 0 {
			t.Errorf("%d failed steps in a succeeded deployment", failed)
		}
		// The picture of the console in docs/console.png comes from here.
		if out := os.Getenv("DE_CONSOLE_SCREENSHOT_BED"); out != "" {
			time.Sleep(time.Second) // the progress bar's transition
			buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(out, buf, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("the command-line client follows a deployment", func(t *testing.T) {
		b.t = t
		// Everything is installed: the deployment has nothing to do, and
		// the client follows it to its end all the same.
		cmd := exec.Command(harness.Binary(t), "deploy", "--follow")
		cmd.Env = append(os.Environ(), "DE_SERVER="+base, "DE_API_TOKEN="+token)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("deploy --follow: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		t.Logf("deploy --follow, stderr:\n%s", stderr.String())
		if !strings.Contains(stderr.String(), " succeeded") || !strings.Contains(stderr.String(), "steps") {
			t.Errorf("deploy --follow said:\n%s", stderr.String())
		}
	})

	t.Run("status, restart and stop", func(t *testing.T) {
		b.t = t
		needRoute(t, base, "GET", "/deployment-engine/status")
		b.run("open status", chromedp.Navigate(base+"/#/status"))
		row := `#status-table tr[data-comp="web"][data-ip="` + n0 + `"]`
		b.waitTextFor(row, "RUNNING", time.Minute)
		b.click(row + " td.actions .btn:first-child")
		b.waitTextFor("#toasts", "Restarted web on "+n0, time.Minute)
		b.waitTextFor(row, "RUNNING", time.Minute)
		b.click(row + " td.actions .btn.danger-ghost")
		b.waitText("#confirm", "Stop web on "+n0+"?")
		b.run("confirm", chromedp.Click(chromedp.ID("confirm-ok")))
		b.waitTextFor("#toasts", "Stopped web on "+n0, time.Minute)
		b.waitTextFor(row, "DOWN", time.Minute)
		b.click(row + " td.actions .btn:first-child")
		b.waitTextFor(row, "RUNNING", time.Minute)
	})

	t.Run("hardware of the nodes", func(t *testing.T) {
		b.t = t
		b.run("open hardware", chromedp.Navigate(base+"/#/hardware"))
		b.waitTextFor("#hardware-body", n0, time.Minute)
		if body := b.visibleText("#hardware-body"); !strings.Contains(body, "web") {
			t.Errorf("hardware view lacks the web instance:\n%s", body)
		}
	})

	t.Run("instances with their processes", func(t *testing.T) {
		b.t = t
		b.run("open instances", chromedp.Navigate(base+"/#/instances"))
		b.waitTextFor(`#instances-table tr.instance[data-id="web/0"]`, "running", time.Minute)
		// The web process as the node's agent read it.
		b.waitTextFor(`#instances-table tr.process[data-id="web/0"][data-process="web"]`, "web", time.Minute)
	})

	t.Run("logs of the deployment", func(t *testing.T) {
		b.t = t
		b.run("open logs", chromedp.Navigate(base+"/#/logs"))
		b.waitTextFor("#logs-table", "web_0.log", time.Minute)
		b.run("view web_0.log", chromedp.Click(chromedp.CSS(`#logs-table tr[data-name="web_0.log"] td.actions .btn`)))
		b.waitTextFor("#log-viewer", "install", time.Minute)
	})

	t.Run("scale out onto the second node", func(t *testing.T) {
		b.t = t
		b.run("open scale", chromedp.Navigate(base+"/#/scale"))
		b.waitText("#scale-comp", "web")
		b.run("scale web", chromedp.SetValue(chromedp.ID("scale-comp"), "web"),
			chromedp.SendKeys(chromedp.ID("scale-ip"), n1), chromedp.Click(chromedp.ID("scale-apply")))
		b.waitText("#deploy-progress", "d-")
		waitDeployment(t, b, 20*time.Minute)
		b.waitText("#steps-table", n1)
		b.waitText("#deploy-log", n1)
		code, body := probe(t, base, "GET", "/deployment-engine/config")
		if code != 200 || !strings.Contains(body, n1) {
			t.Fatalf("config after scale-out: %d %s", code, body)
		}
	})
}

// waitDeployment waits until the followed deployment ends and fails the
// test, with the steps as the console shows them, unless it succeeded.
func waitDeployment(t *testing.T, b *browser, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		switch s := b.visibleText("#deploy-progress .badge"); s {
		case "succeeded":
			return
		case "failed":
			t.Fatalf("the deployment failed; the console shows:\n%s\n%s", b.visibleText("#deploy-progress"), b.visibleText("#steps-table"))
		}
		if time.Now().After(deadline) {
			b.fail("wait for the deployment to end", fmt.Errorf("still %q after %s", b.visibleText("#deploy-progress .badge"), d))
		}
		time.Sleep(time.Second)
	}
}

// freePort finds a free TCP port on host.
func freePort(t *testing.T, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
