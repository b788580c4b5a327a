package installer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

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

// A node whose check reached it but ran out of time gets a second turn,
// twice as long (the first request the node fetches hangs past the
// check's deadline, the second is answered; a request that always takes
// a little more than the deadline is answered in the second turn); one
// whose check always runs out of time is asked twice, then reported with
// the deadline; a node that never answers the handshake is not asked
// again.
func TestProbeSlowCheckGetsAnotherTurn(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	asked := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked[r.URL.Path]++
		n := asked[r.URL.Path]
		mu.Unlock()
		hang := 0 * time.Second
		switch {
		case r.URL.Path == "/always":
			hang = 20 * time.Second
		case r.URL.Path == "/slow":
			hang = 3500 * time.Millisecond
		case n == 1:
			hang = 3 * time.Second
		}
		select {
		case <-r.Context().Done():
		case <-time.After(hang):
		}
	}))
	defer srv.Close()
	probeIn := func(timeoutMS int, nodes []string, url string) []contract.ProbeResult {
		t.Helper()
		rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(),
			contract.Probe{V: 1, Nodes: nodes, Auth: contract.Auth{Key: keyPath}, TimeoutMS: timeoutMS, Fetch: []string{url}})
		if err != nil || rep.Code != 200 {
			t.Fatalf("probe: %v %+v", err, rep)
		}
		var out contract.ProbeReply
		_ = json.Unmarshal(rep.Body, &out)
		return out.Nodes
	}
	probe := func(nodes []string, url string) []contract.ProbeResult { t.Helper(); return probeIn(2000, nodes, url) }

	if r := probe([]string{nodeIP}, srv.URL+"/once")[0]; !r.Reachable || len(r.Fetched) != 1 || r.Fetched[0].Error != "" {
		t.Errorf("a check slow once: %+v", r)
	}
	// 3.5 s (within the node's 4 s for a fetch) against 3 s, then 6 s:
	// room for a busy machine's handshake.
	if r := probeIn(3000, []string{nodeIP}, srv.URL+"/slow")[0]; !r.Reachable || len(r.Fetched) != 1 || r.Fetched[0].Error != "" {
		t.Errorf("a check 1.17 × its deadline every time: %+v", r)
	}
	r := probe([]string{nodeIP}, srv.URL+"/always")[0]
	if r.Reachable || !strings.Contains(r.Error, "deadline exceeded") {
		t.Errorf("a check slow every time: %+v", r)
	}
	mu.Lock()
	if asked["/once"] != 2 || asked["/slow"] != 2 || asked["/always"] != contract.ProbeTries {
		t.Errorf("the node fetched %v, want /once and /slow twice and /always %d times", asked, contract.ProbeTries)
	}
	mu.Unlock()

	silent := startFakeNodeAt(t, "127.0.79.2:"+nodePort, behaviour{silent: true})
	if r := probe([]string{"127.0.79.2"}, srv.URL+"/none")[0]; r.Reachable {
		t.Errorf("a node silent at the handshake: %+v", r)
	}
	if n := silent.accepts.Load(); n != 1 {
		t.Errorf("a node silent at the handshake was dialled %d times, want once", n)
	}
}
