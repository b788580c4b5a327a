package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	consolefs "github.com/deployment-engine/engine/api/console"
	"github.com/deployment-engine/engine/services/contract"
)

// pagedAPI serves a finished deployment of 450 steps (150 nodes × 3
// components, 8 of its web installs failed) as the engine does: its event
// stream opens with the summary, GET /deployments/{id} answers the
// summary with the page a query asks for (contract.PageOf), and a read of
// every step is counted, for the test to refuse.
type pagedAPI struct {
	d     contract.Deployment
	whole atomic.Int32
}

const pagedID = "d-20260316-4a5b"

func newPagedAPI() *pagedAPI {
	created := time.Date(2026, 3, 16, 10, 0, 0, 0, time.UTC)
	finished := created.Add(4 * time.Minute)
	d := contract.Deployment{DeploymentSummary: contract.DeploymentSummary{ID: pagedID, State: contract.DeployFailed, Changed: 442,
		Created: created, Finished: &finished}, Error: "8 step(s) failed"}
	for n := 0; n < 150; n++ {
		node := fmt.Sprintf("198.51.100.%d", n+1)
		for _, comp := range []string{"base", "nats", "web"} {
			st := contract.StepStatus{ID: node + "/" + comp + "/install", Node: node, Component: comp, Action: "install", State: contract.StateSucceeded, Attempt: 1}
			if comp == "web" && n%20 == 3 {
				st.State, st.Error = contract.StateFailed, "monit: web not running"
			}
			d.Steps = append(d.Steps, st)
		}
	}
	return &pagedAPI{d: d}
}

func (p *pagedAPI) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServerFS(consolefs.FS()))
	js := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /deployment-engine/deployments", func(w http.ResponseWriter, r *http.Request) {
		js(w, []contract.DeploymentSummary{p.d.DeploymentSummary})
	})
	mux.HandleFunc("GET /deployment-engine/deployments/{id}", func(w http.ResponseWriter, r *http.Request) {
		q, ok := pagedQuery(r)
		if !ok {
			p.whole.Add(1)
			js(w, p.d)
			return
		}
		js(w, contract.PageOf(p.d, q))
	})
	mux.HandleFunc("GET /deployment-engine/deployments/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("steps") != "0" {
			t.Errorf("the stream is opened without ?steps=0: %s", r.URL)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		sum, _ := json.Marshal(contract.PageOf(p.d, contract.StepQuery{None: true}))
		fmt.Fprintf(w, "event: deployment\ndata: %s\n\n", sum)
		fmt.Fprintf(w, "event: finished\ndata: {\"v\":1,\"id\":%q,\"state\":\"failed\",\"changed\":442,\"error\":\"8 step(s) failed\"}\n\n", pagedID)
	})
	return mux
}

// pagedQuery reads the query as the API does (steps, offset, limit);
// false when it asks for every step.
func pagedQuery(r *http.Request) (contract.StepQuery, bool) {
	v := r.URL.Query()
	if !v.Has("steps") && !v.Has("offset") && !v.Has("limit") {
		return contract.StepQuery{}, false
	}
	var q contract.StepQuery
	switch s := v.Get("steps"); s {
	case "", "all":
	case "0":
		q.None = true
	default:
		q.States = strings.Split(s, ",")
	}
	q.Offset, _ = strconv.Atoi(v.Get("offset"))
	q.Limit, _ = strconv.Atoi(v.Get("limit"))
	return q, true
}

// A deployment of hundreds of steps is shown from its summary and pages:
// the counts and the table per component from the summary, the steps a
// page at a time, the failed ones by the filter; never read whole.
func TestConsolePagedDeployment(t *testing.T) {
	api := newPagedAPI()
	srv := httptest.NewServer(api.handler(t))
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	b.signIn(srv.URL, "Status")
	b.run("open the deployment", chromedp.Navigate(srv.URL+"/#/deploy/"+pagedID))
	b.waitText("#deploy-count", "450/450 steps")
	b.waitText("#deploy-progress", "8 failed")
	b.waitText(`#components-table tr[data-component="web"]`, "150")
	if got := b.visibleText(`#components-table tr[data-component="web"]`); !strings.Contains(got, "8") {
		t.Errorf("the web row %q lacks its 8 failed steps", got)
	}
	b.waitText("#steps-page", "steps 1–200 of 450")
	var rows int
	b.eval(`document.querySelectorAll("#steps-table tr[data-step]").length`, &rows)
	if rows != 200 {
		t.Errorf("the first page shows %d steps, want 200", rows)
	}
	b.click("#steps-next")
	b.waitText("#steps-page", "steps 201–400 of 450")
	b.click("#steps-next")
	b.waitText("#steps-page", "steps 401–450 of 450")
	b.eval(`document.querySelectorAll("#steps-table tr[data-step]").length`, &rows)
	if rows != 50 {
		t.Errorf("the last page shows %d steps, want 50", rows)
	}
	b.eval(`(() => { const s = document.getElementById("steps-filter"); s.value = "failed"; s.dispatchEvent(new Event("change")); return 0 })()`, &rows)
	b.waitText("#steps-page", "steps 1–8 of 8")
	b.waitText("#steps-table", "monit: web not running")
	if n := api.whole.Load(); n != 0 {
		t.Errorf("the deployment was read whole %d time(s)", n)
	}
}
