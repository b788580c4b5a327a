package console

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console shows one cluster at a time, says which on every page, and
// switches to another from its top bar: the config page shows that
// cluster's config, and a reload keeps the cluster.
func TestConsoleClusters(t *testing.T) {
	base := startEngine(t)
	call := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+"/deployment-engine"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s %s: %s", method, path, resp.Status)
		}
	}
	cfg := func(ip string) string {
		return `{"components": {"web": ["` + ip + `"]}, "properties": {"catalog": "starter", "domain": "t.local", "home": "127.0.0.1", "root": "pw", "checkdisk": 0, "adduser": 0}}`
	}
	call("POST", "/clusters", `{"name": "prod"}`)
	call("POST", "/config?check=0", cfg("127.0.0.2"))
	call("POST", "/clusters/prod/config?check=0", cfg("127.0.0.3"))

	b := newBrowser(t)
	b.signIn(base, "Status")
	shown := func(want string) {
		t.Helper()
		var got string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			b.eval(`Array.from(document.querySelectorAll('.ip-input')).map(i => i.value).join(',')`, &got)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the config page shows nodes %q, want %q", got, want)
			}
		}
	}
	b.run("open the config", chromedp.Navigate(base+"/#/config"))
	shown("127.0.0.2")
	var pick, title string
	b.eval(`document.getElementById('cluster').value`, &pick)
	if pick != "default" {
		t.Errorf("the cluster picker shows %q, want default", pick)
	}
	b.run("wait for prod in the picker", chromedp.WaitReady(`#cluster option[value="prod"]`))
	var ok bool
	b.eval(`(() => { const p = document.getElementById('cluster'); p.value = 'prod'; p.dispatchEvent(new Event('change')); return p.value === 'prod'; })()`, &ok)
	if !ok {
		t.Fatal("prod could not be chosen in the cluster picker")
	}
	shown("127.0.0.3")
	b.eval(`document.title`, &title)
	if !strings.Contains(title, "prod") {
		t.Errorf("the page's title %q does not name the cluster", title)
	}
	b.run("reload", chromedp.Reload())
	shown("127.0.0.3")
	b.eval(`document.getElementById('cluster').value`, &pick)
	if pick != "prod" {
		t.Errorf("after a reload the cluster picker shows %q, want prod", pick)
	}
}
