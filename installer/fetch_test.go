package installer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// A probe's Fetch has each node fetch the URLs as its apt would, and says
// per URL why it could not; anything but an http URL is refused.
func TestProbeFetches(t *testing.T) {
	e := newEnv(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer up.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	ask := func(url string) (kit.Reply, contract.ProbeResult) {
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(),
			contract.Probe{V: 1, Nodes: []string{nodeIP}, Auth: contract.Auth{Key: keyPath}, TimeoutMS: 15000, Fetch: []string{url}})
		if err != nil {
			t.Fatal(err)
		}
		var out contract.ProbeReply
		_ = json.Unmarshal(rep.Body, &out)
		if rep.Code != 200 {
			return rep, contract.ProbeResult{}
		}
		return rep, out.Nodes[0]
	}
	for _, tc := range []struct{ url, want string }{
		{up.URL + "/healthz", ""},
		{up.URL + "/nothing", "404"},
		{gone.URL + "/healthz", "connect"},
	} {
		_, r := ask(tc.url)
		if !r.Reachable || len(r.Fetched) != 1 || r.Fetched[0].URL != tc.url {
			t.Fatalf("%s: %+v", tc.url, r)
		}
		if got := r.Fetched[0].Error; (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.url, got, tc.want)
		}
	}
	for _, bad := range []string{"file:///etc/shadow", "http:///no-host", "http://x/ a"} {
		if rep, _ := ask(bad); rep.Code != 400 {
			t.Errorf("%q: code %d, want 400", bad, rep.Code)
		}
	}
}
