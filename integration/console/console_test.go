package console

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/deployment-engine/engine/integration/harness"
)

// probe asks the API directly (not through the browser). Routes that
// other services own answer 404 "no such route" until they exist; the
// views that need them are skipped then, with the reason.
func probe(t *testing.T, base, method, path string) (int, string) {
	t.Helper()
	code, b, err := harness.Request(context.Background(), base, token, method, path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return code, string(b)
}

func needRoute(t *testing.T, base, method, path string) {
	t.Helper()
	if code, body := probe(t, base, method, path); code == 404 && strings.Contains(body, "no such route") {
		t.Fatalf("%s %s is not served by this engine: %s", method, path, body)
	}
}

// TestConsole walks the console in real Chromium against the real engine:
// sign in, the config editor (a problem next to its field, a valid config
// stored with ?check=0 on loopback addresses, secrets never shown), the
// error views before any config, status, hardware, logs, scale-out errors,
// the phone layout and sign out.
func TestConsole(t *testing.T) {
	base := startEngine(t)
	b := newBrowser(t)

	t.Run("sign in refuses a wrong token", func(t *testing.T) {
		b.t = t
		b.run("open the console", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.ID("token")))
		b.waitText("#signin", "Sign in with the engine's API token")
		if s := b.visibleText("#topbar"); s != "" {
			t.Fatalf("the views show before sign in: %q", s)
		}
		b.run("type a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
		b.waitText("#signin-error", "refused")
		var stored string
		b.eval(`sessionStorage.getItem("de.token") || ""`, &stored)
		if stored != "" {
			t.Fatalf("a refused token was kept: %q", stored)
		}
	})

	t.Run("sign in", func(t *testing.T) {
		b.t = t
		var was string
		b.eval(`(() => { const el = document.getElementById("token"); const v = el.value; el.value = ""; return v })()`, &was)
		if was != "not-the-token" {
			t.Errorf("the token field held %q", was)
		}
		b.run("type the token", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.CSS(`#signin-form button[type=submit]`)))
		b.waitText("#topbar", "Status")
		b.waitText("#tabs a.active", "Status")
		var stored string
		b.eval(`sessionStorage.getItem("de.token")`, &stored)
		if stored != token {
			t.Fatalf("token not in sessionStorage: %q", stored)
		}
		var local int
		b.eval(`localStorage.length`, &local)
		if local != 0 {
			t.Fatalf("the console wrote to localStorage")
		}
	})

	t.Run("status before any config", func(t *testing.T) {
		b.t = t
		needRoute(t, base, "GET", "/deployment-engine/status")
		b.run("open status", chromedp.Navigate(base+"/#/status"))
		b.waitText("#status-noconfig", "No config yet")
	})

	t.Run("deploy before any config", func(t *testing.T) {
		b.t = t
		b.run("open deploy", chromedp.Navigate(base+"/#/deploy"), chromedp.WaitVisible(chromedp.ID("deploy-start")))
		b.waitText("#deploy-list", "No deployment yet")
		b.run("deploy", chromedp.Click(chromedp.ID("deploy-start")))
		b.waitText("#deploy-notice .error-box", "No config yet")
	})

	t.Run("config editor shows a bad IP next to its field", func(t *testing.T) {
		b.t = t
		b.run("open config", chromedp.Navigate(base+"/#/config"))
		b.waitText("#config-empty", "No config stored yet")
		row1, row2 := ".comp-row:nth-child(1)", ".comp-row:nth-child(2)"
		b.run("fill the form",
			chromedp.SendKeys(chromedp.CSS(row1+" .comp-input"), "nats"),
			chromedp.SendKeys(chromedp.CSS(row1+" .ip-input"), "127.0.0.2"),
			chromedp.Click(chromedp.CSS(row1+" .add-ip")),
			chromedp.SendKeys(chromedp.CSS(row1+" .ip-item:nth-child(2) .ip-input"), "127.0.0.300"),
			chromedp.Click(chromedp.ID("add-component")),
			chromedp.SendKeys(chromedp.CSS(row2+" .comp-input"), "web"),
			chromedp.SendKeys(chromedp.CSS(row2+" .ip-input"), "127.0.0.3"),
			chromedp.SetValue(chromedp.ID("prop-catalog"), "starter"),
			chromedp.SendKeys(chromedp.ID("prop-home"), "127.0.0.1"),
			chromedp.SendKeys(chromedp.ID("prop-root"), "s3cret-root-pw"),
			chromedp.SetValue(chromedp.ID("prop-checkdisk"), "0"),
			chromedp.SetValue(chromedp.ID("prop-adduser"), "0"),
			chromedp.Click(chromedp.ID("check-nodes")),
		)
		var checked bool
		b.eval(`document.getElementById("check-nodes").checked`, &checked)
		if checked {
			t.Fatal("the check-nodes toggle did not turn off")
		}
		// Checked as it is typed, with the engine's schema: before any save.
		needRoute(t, base, "GET", "/deployment-engine/config/schema")
		b.waitText(row1+" .ip-item:nth-child(2) .field-error", "not an IPv4 address")
		b.waitText("#config-form .f-domain .field-error", "missing")
		b.waitText("#config-live", "problems so far")
		if s := b.visibleText(row1 + " .ip-item:nth-child(1) .field-error"); s != "" {
			t.Errorf("as typed, the good IP shows a problem: %q", s)
		}
		b.run("save", chromedp.Click(chromedp.ID("config-save")))
		b.waitText("#config-notice .error-box", "rejected")
		msg := b.waitText(row1+" .ip-item:nth-child(2) .field-error", "not an IPv4 address")
		var invalid bool
		b.eval(`document.querySelector(".comp-row:nth-child(1) .ip-item:nth-child(2) .ip-input").classList.contains("invalid")`, &invalid)
		if !invalid {
			t.Errorf("the bad IP's input is not marked")
		}
		if s := b.visibleText(row1 + " .ip-item:nth-child(1) .field-error"); s != "" {
			t.Errorf("the good IP shows a problem: %q", s)
		}
		t.Logf("shown next to the field: %q", msg)
		// A missing property: next to its field too.
		b.waitText("#config-form .f-domain .field-error", "missing")
		if code, _ := probe(t, base, "GET", "/deployment-engine/config"); code != 404 {
			t.Fatalf("a rejected config was stored: GET config answers %d", code)
		}
	})

	t.Run("the console's schema checker agrees with the engine's validation", func(t *testing.T) {
		b.t = t
		// The planner's cases, each marked with the engine's verdict: the
		// checker that runs in the browser, with the schema the engine
		// serves, must reach the same one on every case.
		raw, err := os.ReadFile("../../planner/testdata/schema_cases.json")
		if err != nil {
			t.Fatal(err)
		}
		var cases []struct {
			Name  string `json:"name"`
			Valid bool   `json:"valid"`
		}
		if err := json.Unmarshal(raw, &cases); err != nil {
			t.Fatal(err)
		}
		js := `(async () => {
			const { validate } = await import("/js/schema.js");
			const resp = await fetch("/deployment-engine/config/schema", { headers: { Authorization: "Bearer " + sessionStorage.getItem("de.token") } });
			const schema = await resp.json();
			return ` + string(raw) + `.map((c) => validate(schema, c.config).map((p) => p.path + ": " + p.reason));
		})()`
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](js, chromedp.EvalAwaitPromise))
		if err != nil || len(got) != len(cases) {
			t.Fatalf("run the checker on %d cases: %v (%d answers)", len(cases), err, len(got))
		}
		for i, c := range cases {
			if (len(got[i]) == 0) != c.Valid {
				t.Errorf("%s: the engine says valid=%v; the console's checker found %q", c.Name, c.Valid, got[i])
			}
		}
	})

	t.Run("config editor stores a valid config without checking nodes", func(t *testing.T) {
		b.t = t
		b.run("fix the IP and the domain",
			chromedp.SetValue(chromedp.CSS(".comp-row:nth-child(1) .ip-item:nth-child(2) .ip-input"), "127.0.0.4"),
			chromedp.SendKeys(chromedp.ID("prop-domain"), "test.local"))
		b.waitText("#config-live", "No problem found so far")
		b.run("save", chromedp.Click(chromedp.ID("config-save")))
		b.waitText("#config-stored", "Config stored")
		b.waitText("#config-stored", "not contacted")
		code, body := probe(t, base, "GET", "/deployment-engine/config")
		var cfg struct {
			Components map[string][]string
			Properties map[string]any
		}
		if code != 200 || json.Unmarshal([]byte(body), &cfg) != nil {
			t.Fatalf("GET config: %d %s", code, body)
		}
		if strings.Join(cfg.Components["nats"], ",") != "127.0.0.2,127.0.0.4" || cfg.Properties["catalog"] != "starter" || cfg.Properties["root"] != "<redacted>" {
			t.Fatalf("stored config: %s", body)
		}
		// The form reloads from the engine: the rows are back, the secret
		// is the marker's placeholder and never its value.
		b.waitText(".comp-row", "")
		var form struct {
			IPs         []string
			Root, RootP string
			HTML        string
		}
		b.eval(`({IPs: [...document.querySelectorAll(".ip-input")].map(e => e.value),
			Root: document.getElementById("prop-root").value,
			RootP: document.getElementById("prop-root").placeholder,
			HTML: document.documentElement.outerHTML})`, &form)
		if strings.Join(form.IPs, ",") != "127.0.0.2,127.0.0.4,127.0.0.3" {
			t.Errorf("form after reload shows IPs %v", form.IPs)
		}
		if form.Root != "" || form.RootP != "<redacted>" {
			t.Errorf("root field: value %q placeholder %q, want empty and <redacted>", form.Root, form.RootP)
		}
		if strings.Contains(form.HTML, "s3cret-root-pw") {
			t.Errorf("the page holds the secret")
		}
		// Saving again without typing a secret keeps the stored one.
		b.run("save again", chromedp.Click(chromedp.ID("config-save")))
		b.waitText("#config-stored", "Config stored")
		// The pre-checks, again on demand: no sshd answers on these
		// loopback addresses, and each node says so.
		needRoute(t, base, "GET", "/deployment-engine/precheck")
		b.run("pre-check", chromedp.Click(chromedp.ID("config-precheck")))
		b.waitTextFor("#precheck-result", "3 problem(s)", time.Minute)
		b.waitText("#precheck-result", "127.0.0.4: node not reachable: refused")
	})

	t.Run("status with a config", func(t *testing.T) {
		b.t = t
		needRoute(t, base, "GET", "/deployment-engine/status")
		b.run("open status", chromedp.Navigate(base+"/#/status"))
		table := b.waitText("#status-table", "127.0.0.4")
		for _, want := range []string{"nats", "web", "127.0.0.2", "127.0.0.3"} {
			if !strings.Contains(table, want) {
				t.Errorf("status table lacks %q:\n%s", want, table)
			}
		}
		var badges []string
		b.eval(`[...document.querySelectorAll("#status-table tbody .badge")].map(e => e.innerText)`, &badges)
		if len(badges) != 3 {
			t.Fatalf("want 3 instances, got badges %v", badges)
		}
		for _, s := range badges {
			if s != "RUNNING" && s != "DOWN" {
				t.Errorf("badge %q is neither RUNNING nor DOWN", s)
			}
		}
		b.waitText("#status-summary", "running")
		b.waitText("#status-table", "Restart")
	})

	t.Run("hardware", func(t *testing.T) {
		b.t = t
		needRoute(t, base, "GET", "/deployment-engine/hardware?comp=all&ip=0.0.0.0")
		b.run("open hardware", chromedp.Navigate(base+"/#/hardware"))
		b.waitText("#hardware-body", "127.0.0.")
	})

	t.Run("instances", func(t *testing.T) {
		b.t = t
		needRoute(t, base, "GET", "/deployment-engine/instances")
		b.run("open instances", chromedp.Navigate(base+"/#/instances"))
		// No node answers on loopback: each instance is failing, its job
		// shown with the reason.
		b.waitText("#instances-table", "failing")
		b.waitText("#instances-table", "127.0.0.")
	})

	t.Run("logs list", func(t *testing.T) {
		b.t = t
		needRoute(t, base, "GET", "/deployment-engine/download")
		b.run("open logs", chromedp.Navigate(base+"/#/logs"))
		b.waitText("#logs-table", "local.log")
		b.run("view local.log", chromedp.Click(chromedp.CSS(`#logs-table tr[data-name="local.log"] td.actions .btn`)))
		b.waitText("#log-viewer", "local.log")
	})

	t.Run("scale out shows the engine's refusal", func(t *testing.T) {
		b.t = t
		b.run("open scale", chromedp.Navigate(base+"/#/scale"))
		b.waitText("#scale-comp", "nats")
		b.run("scale nats onto an IP it already has",
			chromedp.SetValue(chromedp.ID("scale-comp"), "nats"),
			chromedp.SendKeys(chromedp.ID("scale-ip"), "127.0.0.2"),
			chromedp.Click(chromedp.ID("scale-apply")))
		b.waitText("#scale-notice .error-box", "did not start")
	})

	t.Run("audit trail and heal banner", func(t *testing.T) {
		b.t = t
		// Switched off at run time: every view says so at the top.
		if code, body, err := harness.Request(context.Background(), base, token, "PUT", "/deployment-engine/heal", `{"enabled": false}`, nil); err != nil || code != 200 {
			t.Fatalf("heal off: %v %d %s", err, code, body)
		}
		b.run("open audit", chromedp.Navigate(base+"/#/audit"))
		b.waitText("#audit-table", "config")
		b.waitText("#audit-table", "admin")
		b.waitText("#audit-table", "enabled=false")
		b.waitText("#banner", "Auto-heal is off")
		b.run("switch it on from the banner", chromedp.Click(chromedp.CSS("#banner button")))
		b.waitText("#audit-table", "admin") // the view stays
		var hidden bool
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if b.eval(`document.getElementById("banner").hidden`, &hidden); hidden {
				break
			}
		}
		if !hidden {
			t.Fatal("the banner stayed after auto-heal was switched on")
		}
	})

	t.Run("phone width has no horizontal overflow", func(t *testing.T) {
		b.t = t
		b.run("phone viewport", phone())
		defer b.run("laptop viewport", laptop())
		for _, v := range []struct{ hash, sel, want string }{
			{"#/status", "#view", "Status"},
			{"#/config", "#comp-rows", ""},
			{"#/deploy", "#deploy-list", "Deployments"},
			{"#/hardware", "#view", "Hardware"},
			{"#/scale", "#scale-form", "Add an instance"},
			{"#/logs", "#view", "Logs"},
			{"#/audit", "#audit-table", "config"},
		} {
			b.run("open "+v.hash, chromedp.Navigate(base+"/"+v.hash))
			b.waitText(v.sel, v.want)
			b.noHorizontalOverflow(v.hash)
			if os.Getenv("DE_TEST_ARTIFACTS") != "" {
				b.screenshot("phone-" + strings.Trim(v.hash, "#/"))
			}
		}
		var tabsFit bool
		b.eval(`document.getElementById("tabs").getBoundingClientRect().right <= document.documentElement.clientWidth`, &tabsFit)
		if !tabsFit {
			t.Errorf("the tabs run off a phone's screen")
		}
	})

	t.Run("sign out", func(t *testing.T) {
		b.t = t
		b.run("sign out", chromedp.Navigate(base+"/#/status"), chromedp.WaitVisible(chromedp.ID("signout")), chromedp.Click(chromedp.ID("signout")))
		b.waitText("#signin", "Sign in")
		var stored string
		b.eval(`sessionStorage.getItem("de.token") || ""`, &stored)
		if stored != "" {
			t.Fatalf("token kept after sign out")
		}
	})
}
