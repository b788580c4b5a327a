// Package console holds the web console's browser tests: the real engine
// (engine.Serve on a temp data dir) and real headless Chromium, driven with
// chromedp. They assert on what a person sees: visible text and elements.
package console

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deployment-engine/engine/deploy/engine"
	"github.com/deployment-engine/engine/deploy/engine/enginetest"
)

const token = "console-test-token-0123456789"

// startEngine runs the real engine on a temp data dir on 127.0.0.1:0 and
// returns its base URL.
func startEngine(t *testing.T) string {
	t.Helper()
	addr, stop := enginetest.Start(t, token, engine.Options{NoAgents: true})
	t.Cleanup(stop)
	return "http://" + addr
}

// chromiumPath finds the browser; the tests fail without one
// (`apt-get install chromium`; `make test` installs it).
func chromiumPath(t *testing.T) string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: run `make deps` as root (it installs chromium)")
	return ""
}

// browser is one headless Chromium tab.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		// Chromium's singleton socket goes below $TMPDIR, and stays there
		// when the browser is killed: the test's own directory, removed
		// with it.
		chromedp.Env("TMPDIR=" + t.TempDir()),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	if err := chromedp.Do(ctx); err != nil {
		cancelC()
		cancelA()
		t.Fatalf("start chromium: %v", err)
	}
	// The engine's Content-Security-Policy must let every view work: any
	// violation the browser reports fails the test.
	var mu sync.Mutex
	var violations []string
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				violations = append(violations, m.Text)
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelC()
		cancelA()
		mu.Lock()
		defer mu.Unlock()
		for _, v := range violations {
			t.Errorf("the console broke the engine's CSP: %s", v)
		}
	})
	return &browser{t: t, ctx: ctx}
}

// run runs actions with a deadline; on failure it saves a screenshot and
// the page's text to the test's log.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.fail(what, err)
	}
}

// signIn signs in at base with the test token and waits for the top bar
// to show landing (the page the console opens on).
func (b *browser) signIn(base, landing string) {
	b.t.Helper()
	b.run("sign in", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
	b.waitText("#topbar", landing)
}

// click clicks the element matching the CSS selector, again when the view
// redrew it between the lookup and the click (status redraws itself).
func (b *browser) click(sel string) {
	b.t.Helper()
	b.again("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// typeInto types text into the field matching the CSS selector, again when
// the view redrew it between the lookup and the focus (once focused, status
// keeps the field and what was typed).
func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.again("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// again runs actions up to five times while they fail, as an element they
// found may be gone by the time they act on it.
func (b *browser) again(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	var err error
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		err = chromedp.Do(ctx, actions...)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.fail(what, err)
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	b.t.Fatalf("%s: %v\npage text:\n%s\n(screenshot: %s)", what, err, b.pageText(), b.screenshot("failure"))
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return s
}

// screenshot saves the page as a PNG in the test's temp dir (or in
// $DE_TEST_ARTIFACTS when set) and returns its path.
func (b *browser) screenshot(name string) string {
	dir := os.Getenv("DE_TEST_ARTIFACTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	safe := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
				return r
			}
			return '_'
		}, s)
	}
	p := filepath.Join(dir, safe(b.t.Name())+"-"+safe(name)+".png")
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "none: " + err.Error()
	}
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		return "none: " + err.Error()
	}
	return p
}

// waitText waits until the element matching sel is visible and its text
// contains want.
func (b *browser) waitText(sel, want string) string {
	b.t.Helper()
	return b.waitTextFor(sel, want, 20*time.Second)
}

// waitTextFor is waitText with its own deadline.
func (b *browser) waitTextFor(sel, want string, d time.Duration) string {
	b.t.Helper()
	var got string
	deadline := time.Now().Add(d)
	for {
		got = b.visibleText(sel)
		if got != "" && strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			b.fail(fmt.Sprintf("wait for %q in %s", want, sel), fmt.Errorf("visible text is %q", got))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// visibleText is the innerText of the first element matching sel when it
// is rendered and visible, else "".
func (b *browser) visibleText(sel string) string {
	b.t.Helper()
	js := fmt.Sprintf(`(() => {
		const el = document.querySelector(%q);
		if (!el || !el.getClientRects().length) return "";
		const st = getComputedStyle(el);
		if (st.visibility === "hidden" || st.display === "none") return "";
		return el.innerText || el.value || " ";
	})()`, sel)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.fail("read "+sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression and decodes its value into out.
func (b *browser) eval(js string, out any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		b.fail("evaluate "+js, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		b.fail("decode the value of "+js, fmt.Errorf("%w: %s", err, raw))
	}
}

// noHorizontalOverflow fails when the page is wider than the viewport.
func (b *browser) noHorizontalOverflow(view string) {
	b.t.Helper()
	var r struct {
		Scroll, Client, Body int
		Wide                 []string
	}
	b.eval(`(() => {
		const de = document.documentElement;
		const wide = [];
		for (const el of document.body.querySelectorAll("*")) {
			const rc = el.getBoundingClientRect();
			if (rc.width && rc.right > de.clientWidth + 1 && !el.closest(".table-wrap, .tabs, .log, pre")) {
				wide.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + "." + [...el.classList].join(".") + " right=" + Math.round(rc.right));
			}
		}
		// Tables that collapse into cards must fit without scrolling.
		for (const w of document.querySelectorAll(".table-wrap")) {
			if (w.querySelector("table.responsive") && w.scrollWidth > w.clientWidth + 1) {
				wide.push("collapsed table " + (w.firstElementChild.id || "") + " needs " + w.scrollWidth + "px of " + w.clientWidth);
			}
		}
		return {Scroll: de.scrollWidth, Client: de.clientWidth, Body: document.body.scrollWidth, Wide: wide.slice(0, 8)};
	})()`, &r)
	if r.Scroll > r.Client || r.Body > r.Client || len(r.Wide) > 0 {
		b.t.Errorf("%s at phone width: page %dpx wide, viewport %dpx (body %dpx); too wide: %v (screenshot: %s)",
			view, r.Scroll, r.Client, r.Body, r.Wide, b.screenshot("overflow-"+view))
	}
}

// phone switches the viewport to a 375px-wide phone.
func phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(375, 812, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait)
}

// laptop switches to a 1280px-wide window.
func laptop() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(1280, 900)
}
