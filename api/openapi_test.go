package api

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/go-chi/chi/v5"
	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/api/openapitest"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.json from the route table")

var (
	docOnce sync.Once
	docJSON []byte
	docErr  error
)

// document is the API's OpenAPI document, built once per test binary.
func document(t *testing.T) []byte {
	t.Helper()
	docOnce.Do(func() { docJSON, docErr = OpenAPI(BuildInfo{}) })
	if docErr != nil {
		t.Fatal(docErr)
	}
	return docJSON
}

// checked wraps h so that every answer it gives is held to the OpenAPI
// document: a status code, a content type or a body the document does
// not list fails t.
func checked(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	return checkedBy(t, document(t), h, func(err error) { t.Errorf("OpenAPI drift: %v", err) })
}

func checkedBy(t *testing.T, doc []byte, h http.Handler, report func(error)) http.Handler {
	t.Helper()
	// A handler may still finish after its test (a server closed without
	// waiting): what it reports then goes to the log of the run.
	var mu sync.Mutex
	ended := false
	t.Cleanup(func() { mu.Lock(); ended = true; mu.Unlock() })
	c, err := openapitest.Load(context.Background(), doc, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if ended {
			fmt.Fprintf(os.Stderr, "OpenAPI drift after %s ended: %v\n", t.Name(), err)
			return
		}
		report(err)
	})
	if err != nil {
		t.Fatal(err)
	}
	return c.Handler(h)
}

// checkedServer serves h on loopback, held to the document.
func checkedServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(checked(t, h))
	t.Cleanup(ts.Close)
	return ts
}

// caller sends requests to the API at url with a token, answering the
// status and the body.
func caller(t *testing.T, url string) func(method, path, tok, body string) (int, string) {
	return func(method, path, tok, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url+"/deployment-engine"+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
}

// The document loads and validates as OpenAPI 3.1 (kin-openapi, JSON
// Schema 2020-12), and every example it shows is valid against its
// schema.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	c, err := openapitest.Load(context.Background(), document(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	doc := c.Doc()
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	examples := 0
	for name, ref := range doc.Components.Schemas {
		for i, ex := range ref.Value.Examples {
			examples++
			if err := ref.Value.VisitJSON(ex, openapi3.EnableJSONSchema2020()); err != nil {
				t.Errorf("schema %s, example %d: %v", name, i, err)
			}
		}
	}
	if examples < 20 {
		t.Errorf("%d examples in the document; the contract's doc comments have more", examples)
	}
	if s := doc.Components.SecuritySchemes["apiToken"]; s == nil || s.Value.Scheme != "bearer" {
		t.Errorf("security scheme: %+v", s)
	}
}

// The document as committed in testdata/openapi.json: a change to a route
// or a contract type shows in review as a change of the document.
// go test -run TestOpenAPIGolden -update rewrites it.
func TestOpenAPIGolden(t *testing.T) {
	golden := filepath.Join("testdata", "openapi.json")
	if *update {
		if err := os.WriteFile(golden, document(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, document(t)) {
		t.Fatalf("the document differs from %s: run go test -run TestOpenAPIGolden -update and review the diff", golden)
	}
}

// Client generators take a schema's list of types as one type or null
// only (oapi-codegen refuses ["integer", "string"]): a value of several
// types is an anyOf of them, which they make a union type. The anyOf
// allows what the list of types did.
func TestOpenAPISchemasArePortable(t *testing.T) {
	var doc any
	if err := json.Unmarshal(document(t), &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if types, ok := v["type"].([]any); ok {
				var named []any
				for _, ty := range types {
					if ty != "null" {
						named = append(named, ty)
					}
				}
				if len(named) > 1 {
					t.Errorf("%s: type %v; write it as anyOf", path, types)
				}
			}
			for k, e := range v {
				walk(path+"/"+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s/%d", path, i), e)
			}
		}
	}
	walk("#", doc)

	c, err := openapitest.Load(context.Background(), document(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	schemas := c.Doc().Components.Schemas
	flex := schemas["Flex"].Value
	maxInFlight := schemas["UpdateConfig"].Value.Properties["max_in_flight"].Value
	for _, tc := range []struct {
		name   string
		schema *openapi3.Schema
		value  string
		valid  bool
	}{
		{"Flex, a number", flex, `15`, true},
		{"Flex, a string", flex, `"15"`, true},
		{"Flex, unset", flex, `null`, true},
		{"Flex, a boolean", flex, `true`, false},
		{"Flex, a fraction", flex, `1.5`, false},
		{"max_in_flight, a number", maxInFlight, `2`, true},
		{"max_in_flight, a percentage", maxInFlight, `"50%"`, true},
		{"max_in_flight, null", maxInFlight, `null`, false},
		{"max_in_flight, an object", maxInFlight, `{}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v any
			if err := json.Unmarshal([]byte(tc.value), &v); err != nil {
				t.Fatal(err)
			}
			err := tc.schema.VisitJSON(v, openapi3.EnableJSONSchema2020())
			if (err == nil) != tc.valid {
				t.Errorf("%s: valid %v, want %v (%v)", tc.value, err == nil, tc.valid, err)
			}
		})
	}
}

// Every route the router serves is described, with an operation id, a
// summary and a successful answer; no description is left of a route
// that is gone, and no operation id is used twice.
func TestEveryRouteIsDocumented(t *testing.T) {
	h, err := New(Options{AuthNone: true, MirrorDir: t.TempDir(), Releases: stubReleases{t.TempDir()}, Compiled: stubCompiled{t.TempDir()}, Console: os.DirFS(t.TempDir())})
	if err != nil {
		t.Fatal(err)
	}
	anon := map[string]bool{}
	for _, a := range anonDocs {
		anon[a.method+" "+a.pattern] = true
	}
	seen := map[string]bool{}
	err = chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		below, inTable := strings.CutPrefix(route, prefix+"/")
		switch {
		case route == "/*" || route == prefix+"/*" || route == prefix+clustersRoute:
			// The console's files; the table's mount; a cluster's own
			// routes, this table's (described in GET /clusters).
		case anon[method+" "+route]:
			seen[method+" "+route] = true
		case inTable && route != OpenAPIPath:
			key := method + " /" + below
			if _, ok := routeDocs[key]; !ok {
				t.Errorf("%s %s: not in routeDocs", method, route)
			}
			seen[key] = true
		case method != http.MethodGet:
			// A route registered for every method: its GET is described.
		default:
			t.Errorf("%s %s: not in anonDocs", method, route)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	check := func(key string, d opDoc) {
		if !seen[key] {
			t.Errorf("%s is described but not served", key)
		}
		if d.id == "" || d.summary == "" {
			t.Errorf("%s: no operation id or summary", key)
		}
		if prev, dup := ids[d.id]; dup {
			t.Errorf("%s: operation id %s is %s's too", key, d.id, prev)
		}
		ids[d.id] = key
		success := false
		for _, r := range d.ok {
			success = success || r.code/100 == 2
		}
		if !success {
			t.Errorf("%s: no successful answer", key)
		}
	}
	for key, d := range routeDocs {
		check(key, d)
	}
	for _, a := range anonDocs {
		check(a.method+" "+a.pattern, a.doc)
	}
}

// Each operation of the table states the least role it needs (x-role),
// and lists 403: a token may lack the role or the cluster anywhere.
func TestOpenAPIStatesRoles(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]struct {
			Role      string                     `json:"x-role"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(document(t), &doc); err != nil {
		t.Fatal(err)
	}
	for _, rt := range (&server{}).routes() {
		op, ok := doc.Paths[prefix+rt.pattern][strings.ToLower(rt.method)]
		if !ok {
			t.Errorf("%s %s: not in the document", rt.method, rt.pattern)
			continue
		}
		if op.Role != rt.role.String() {
			t.Errorf("%s %s: x-role %q, want %q", rt.method, rt.pattern, op.Role, rt.role)
		}
		if _, ok := op.Responses["403"]; !ok {
			t.Errorf("%s %s: no 403", rt.method, rt.pattern)
		}
	}
}

// The document is served without a token, as built.
func TestOpenAPIServedWithoutToken(t *testing.T) {
	h, err := New(Options{Token: adminTok})
	if err != nil {
		t.Fatal(err)
	}
	ts := checkedServer(t, h)
	resp, err := http.Get(ts.URL + OpenAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, document(t)) {
		t.Fatalf("GET %s: %d, %d bytes", OpenAPIPath, resp.StatusCode, len(got))
	}
}

// The drift check fails a test on an answer the document does not list:
// here the engine answers a deploy with the id under another name, with a
// status the document no longer lists for it, and with a field the
// contract's type lacks.
func TestDriftFailsTheTest(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	var answer atomic.Value
	answer.Store(`{"id": "d-20261124-223905-1a2b"}`)
	sub, err := b.NC.Subscribe(subject.DeployStart(), func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "202")
		r.Data = []byte(answer.Load().(string))
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	h, err := New(Options{NC: b.NC, AuthNone: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		answer string
		edit   func(doc map[string]any)
		want   []string // each in the report; none for no report
	}{
		{"as documented", `{"id": "d-20261124-223905-1a2b"}`, nil, nil},
		{"the id renamed in the document", `{"id": "d-20261124-223905-1a2b"}`, func(doc map[string]any) {
			s := dig(doc, "components", "schemas", "DeployStarted")
			props := s["properties"].(map[string]any)
			props["deployment"], s["required"] = props["id"], []any{"deployment"}
			delete(props, "id")
		}, []string{"DeployStarted", "missing", "deployment"}},
		{"202 no longer listed", `{"id": "d-20261124-223905-1a2b"}`, func(doc map[string]any) {
			delete(dig(doc, "paths", prefix+"/deploy", "post", "responses"), "202")
		}, []string{"the document lists no 202 for it"}},
		{"a field the contract lacks", `{"id": "d-20261124-223905-1a2b", "nodes": 3}`, nil, []string{"DeployStarted", "nodes", "not allowed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := document(t)
			if tt.edit != nil {
				var m map[string]any
				if err := json.Unmarshal(doc, &m); err != nil {
					t.Fatal(err)
				}
				tt.edit(m)
				doc, _ = json.Marshal(m)
			}
			answer.Store(tt.answer)
			var reports []string
			var mu sync.Mutex
			ts := httptest.NewServer(checkedBy(t, doc, h, func(err error) {
				mu.Lock()
				defer mu.Unlock()
				reports = append(reports, err.Error())
			}))
			defer ts.Close()
			resp, body := do(t, "POST", ts.URL+prefix+"/deploy", "")
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("deploy: %d %s", resp.StatusCode, body)
			}
			ts.Close() // the check runs as the handler ends
			mu.Lock()
			defer mu.Unlock()
			if len(tt.want) == 0 {
				if len(reports) > 0 {
					t.Fatalf("drift reported on a documented answer: %v", reports)
				}
				return
			}
			if len(reports) != 1 {
				t.Fatalf("%d reports %q, want one", len(reports), reports)
			}
			for _, w := range tt.want {
				if !strings.Contains(reports[0], w) {
					t.Fatalf("report %q, want %q in it", reports[0], w)
				}
			}
			t.Logf("caught: %s", strings.SplitN(reports[0], "\n", 2)[0])
		})
	}
}

// dig is the object at path in a decoded JSON document.
func dig(doc map[string]any, path ...string) map[string]any {
	for _, k := range path {
		doc = doc[k].(map[string]any)
	}
	return doc
}

// Each event of a deployment's stream is held to the schema the document
// names for its kind; an event of a kind it does not name fails.
func TestDriftOfEvents(t *testing.T) {
	c, err := openapitest.Load(context.Background(), document(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", prefix+"/deployments/d-1/events", nil)
	hdr := http.Header{"Content-Type": {"text/event-stream"}}
	good := "event: deployment\ndata: {\"id\":\"d-1\",\"state\":\"running\",\"changed\":0,\"created\":\"2026-11-24T22:39:05Z\",\"steps\":[]}\n\n" +
		": keepalive\n\n" +
		"event: finished\ndata: {\"v\":1,\"id\":\"d-1\",\"state\":\"succeeded\",\"changed\":0,\"time\":\"2026-11-24T22:39:46Z\"}\n\n"
	for _, tt := range []struct {
		name, body string
		want       []string
	}{
		{"as documented", good, nil},
		{"an event of no documented kind", good + "event: progress\ndata: {}\n\n", []string{`event "progress"`, "names no schema"}},
		{"a finished event without its state", strings.Replace(good, `"state":"succeeded",`, "", 1),
			[]string{`event "finished"`, "DeploymentEvent", "state"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(context.Background(), req, 200, hdr, []byte(tt.body), true)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no drift reported")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("%v: want %q in it", err, w)
				}
			}
		})
	}
}
