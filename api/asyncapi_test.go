package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/deployment-engine/engine/api/asyncapitest"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

var (
	asyncOnce sync.Once
	asyncJSON []byte
	asyncErr  error
)

// asyncDoc is the events' AsyncAPI document, built once per test binary.
func asyncDoc(t *testing.T) []byte {
	t.Helper()
	asyncOnce.Do(func() { asyncJSON, asyncErr = AsyncAPI(BuildInfo{}) })
	if asyncErr != nil {
		t.Fatal(asyncErr)
	}
	return asyncJSON
}

// asyncAPISchema is the AsyncAPI 3.0.0 JSON Schema (draft-07), as
// github.com/asyncapi/spec-json-schemas publishes it (Apache-2.0):
// schemas/3.0.0-without-$id.json of commit 469c2b2b (2026-05-20),
// gzipped; its SHA-256 is upstream's file's.
const asyncAPISchemaSHA256 = "acefdddecb7909e2e6335f49b5acf222cf6170e303e51ab7824123981d7adfa0"

func asyncAPISchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "asyncapi-3.0.0.schema.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != asyncAPISchemaSHA256 {
		t.Fatalf("the AsyncAPI 3.0.0 JSON Schema in testdata is not upstream's (sha256 %x)", sum)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("asyncapi-3.0.0.json", v); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("asyncapi-3.0.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// The document follows the AsyncAPI 3.0 JSON Schema; every reference in
// it resolves, and each operation's messages are its channel's; every
// payload schema is valid JSON Schema, both 2020-12 and draft-07 (the
// AsyncAPI schema format's base); and every example is an event the
// checker accepts on the subject it names.
func TestAsyncAPIDocumentIsValid(t *testing.T) {
	doc := asyncDoc(t)
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	if err := asyncAPISchema(t).Validate(v); err != nil {
		t.Fatalf("not a valid AsyncAPI 3.0.0 document: %v", err)
	}
	var refs []string
	collectRefs(v, &refs)
	for _, r := range refs {
		if _, ok := pointer(v, r); !ok {
			t.Errorf("$ref %s resolves to nothing", r)
		}
	}
	if len(refs) < 30 {
		t.Errorf("%d references in the document; want its channels, operations and messages tied by them", len(refs))
	}
	var d struct {
		Channels   map[string]struct{ Address *string } `json:"channels"`
		Operations map[string]struct {
			Action  string `json:"action"`
			Channel struct {
				Ref string `json:"$ref"`
			} `json:"channel"`
			Messages []struct {
				Ref string `json:"$ref"`
			} `json:"messages"`
			Reply *struct {
				Channel struct {
					Ref string `json:"$ref"`
				} `json:"channel"`
				Messages []struct {
					Ref string `json:"$ref"`
				} `json:"messages"`
			} `json:"reply"`
		} `json:"operations"`
		Components struct {
			Schemas  map[string]json.RawMessage `json:"schemas"`
			Messages map[string]struct {
				Payload  json.RawMessage `json:"payload"`
				Sealed   string          `json:"x-sealed"`
				Examples []struct {
					Summary string          `json:"summary"`
					Payload json.RawMessage `json:"payload"`
				} `json:"examples"`
			} `json:"messages"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	replies := map[string]bool{} // the messages agents answer with, on an inbox
	for name, op := range d.Operations {
		ch := strings.TrimPrefix(op.Channel.Ref, "#/channels/")
		agents := strings.HasPrefix(ch, "node")
		if len(op.Messages) != 1 || !strings.HasPrefix(op.Messages[0].Ref, op.Channel.Ref+"/messages/") ||
			!(op.Action == "receive" || agents && op.Action == "send") || name != op.Action+upperFirst(ch) {
			t.Errorf("operation %s: %+v, want a receive of its channel's message (or an agent's send)", name, op)
		}
		if op.Reply == nil {
			continue
		}
		rch := strings.TrimPrefix(op.Reply.Channel.Ref, "#/channels/")
		if !agents || op.Action != "receive" || len(op.Reply.Messages) != 1 ||
			!strings.HasPrefix(op.Reply.Messages[0].Ref, op.Reply.Channel.Ref+"/messages/") || d.Channels[rch].Address != nil {
			t.Errorf("operation %s: reply %+v, want an agent's answer on the requester's inbox", name, op.Reply)
		}
		replies[rch] = true
	}
	for _, draft := range []*jsonschema.Draft{jsonschema.Draft2020, jsonschema.Draft7} {
		c := jsonschema.NewCompiler()
		c.DefaultDraft(draft)
		if err := c.AddResource("doc.json", v); err != nil {
			t.Fatal(err)
		}
		for name := range d.Components.Schemas {
			if _, err := c.Compile("doc.json#/components/schemas/" + name); err != nil {
				t.Errorf("schema %s is not valid JSON Schema %s: %v", name, draft, err)
			}
		}
	}
	ck, err := asyncapitest.Load(doc)
	if err != nil {
		t.Fatal(err)
	}
	examples := 0
	for name, m := range d.Components.Messages {
		if len(m.Examples) == 0 && len(m.Payload) > 0 {
			t.Errorf("message %s has no example", name)
		}
		if replies[name] {
			for _, ex := range m.Examples {
				examples++
				checkReplyExample(t, v, name, ex.Payload)
			}
			continue
		}
		for _, ex := range m.Examples {
			examples++
			payload := []byte(ex.Payload)
			if m.Sealed != "" {
				payload = nodeexec.Seal([]byte("a node's key"), payload)
			}
			if ch, err := ck.Check(ex.Summary, payload); err != nil || ch != name {
				t.Errorf("message %s's example on %s: channel %s, %v", name, ex.Summary, ch, err)
			}
			if err := parseSubject(ex.Summary); err != nil {
				t.Errorf("message %s's example: %v", name, err)
			}
		}
	}
	if sealedHMAC != asyncapitest.SealedHMAC {
		t.Errorf("x-sealed %q, the checker reads %q", sealedHMAC, asyncapitest.SealedHMAC)
	}
	t.Logf("%d channels, %d schemas, %d examples, %d references", len(ck.Channels()), len(d.Components.Schemas), examples, len(refs))
}

// checkReplyExample validates an example of an agent's reply against its
// payload schema: a reply has no subject the checker could match.
func checkReplyExample(t *testing.T, doc any, name string, payload []byte) {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("doc.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("doc.json#/components/messages/" + name + "/payload")
	if err != nil {
		t.Fatalf("reply %s: %v", name, err)
	}
	ex, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err == nil {
		err = sch.Validate(ex)
	}
	if err != nil {
		t.Errorf("reply %s's example: %v", name, err)
	}
}

// parseSubject tells whether s is a subject services/subject builds for an
// event or an agent.
func parseSubject(s string) error {
	if strings.HasPrefix(s, "de.evt.") {
		_, err := subject.ParseEvent(s)
		return err
	}
	if _, err := subject.ParseNodeLog(s); err == nil {
		return nil
	}
	if p := strings.Split(s, "."); len(p) == 5 && p[3] == subject.VerbExecOut {
		if _, err := subject.ParseNode(strings.Join(p[:4], ".")); err != nil || !subject.ValidToken(p[4]) {
			return fmt.Errorf("%q is not an exec output subject", s)
		}
		return nil
	}
	_, err := subject.ParseNode(s)
	return err
}

func collectRefs(v any, out *[]string) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if s, ok := x.(string); ok && k == "$ref" {
				*out = append(*out, s)
				continue
			}
			collectRefs(x, out)
		}
	case []any:
		for _, x := range t {
			collectRefs(x, out)
		}
	}
}

// pointer is what a local reference (#/a/b) points to in v.
func pointer(v any, ref string) (any, bool) {
	path, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	for _, k := range strings.Split(path, "/") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~")]; !ok {
			return nil, false
		}
	}
	return v, true
}

// Every family of event subjects has a channel, and so has every verb of
// the agents' subjects; no channel is anything else: each address is
// below de.evt, where the observer may subscribe, or de.node.{ip}, where
// an agent may (or is the requester's inbox of an agent's reply), and a
// parameter stands for a whole token.
func TestAsyncAPICoversEveryFamily(t *testing.T) {
	var d struct {
		Channels map[string]struct{ Address *string } `json:"channels"`
	}
	if err := json.Unmarshal(asyncDoc(t), &d); err != nil {
		t.Fatal(err)
	}
	families, verbs := map[subject.Family]int{}, map[string]int{}
	for name, ch := range d.Channels {
		if ch.Address == nil {
			if !strings.HasPrefix(name, "node") || !strings.HasSuffix(name, "Reply") {
				t.Errorf("channel %s has no address; only an agent's reply may", name)
			}
			continue
		}
		toks := strings.Split(*ch.Address, ".")
		switch {
		case len(toks) >= 4 && toks[0] == "de" && toks[1] == "evt":
			families[subject.Family(toks[2])]++
		case len(toks) >= 4 && toks[0] == "de" && toks[1] == "node" && toks[2] == "{ip}" && strings.HasPrefix(name, "node"):
			verbs[toks[3]]++
		default:
			t.Errorf("channel %s: %s is neither an event subject nor an agent's", name, *ch.Address)
			continue
		}
		for _, tok := range toks[3:] {
			if strings.ContainsAny(tok, "{}") && !(strings.HasPrefix(tok, "{") && strings.HasSuffix(tok, "}")) {
				t.Errorf("channel %s: token %q is part parameter, part literal", name, tok)
			}
		}
	}
	for _, f := range subject.Families() {
		if families[f] == 0 {
			t.Errorf("family %s has no channel", f)
		}
	}
	if len(families) != len(subject.Families()) {
		t.Errorf("channels of families %v, subject.Families %v", families, subject.Families())
	}
	for _, v := range subject.NodeVerbs() {
		if verbs[v] != 1 {
			t.Errorf("node verb %s has %d channels, want 1", v, verbs[v])
		}
	}
	if len(verbs) != len(subject.NodeVerbs()) {
		t.Errorf("channels of node verbs %v, subject.NodeVerbs %v", verbs, subject.NodeVerbs())
	}
}

// The document as committed in testdata/asyncapi.json: a change to a
// subject or an event's type shows in review as a change of the document.
// go test -run TestAsyncAPIGolden -update rewrites it.
func TestAsyncAPIGolden(t *testing.T) {
	golden := filepath.Join("testdata", "asyncapi.json")
	if *update {
		if err := os.WriteFile(golden, asyncDoc(t), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, asyncDoc(t)) {
		t.Fatalf("the document differs from %s: run go test -run TestAsyncAPIGolden -update and review the diff", golden)
	}
}

// The document is served without a token, as built.
func TestAsyncAPIServedWithoutToken(t *testing.T) {
	h, err := New(Options{Token: adminTok})
	if err != nil {
		t.Fatal(err)
	}
	ts := checkedServer(t, h)
	resp, err := http.Get(ts.URL + AsyncAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(got, asyncDoc(t)) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s, %d bytes", AsyncAPIPath, resp.StatusCode, resp.Header.Get("Content-Type"), len(got))
	}
}

// The checker fails an event the document does not describe: on a subject
// of no channel, with a field its type lacks or of another type, without a
// required one, with a subject that says another deployment than its
// payload; and a real payload once the document renames one of its fields.
func TestAsyncAPIDriftFailsTheTest(t *testing.T) {
	good := `{"v":1,"id":"d-1","state":"succeeded","changed":3,"time":"2026-11-24T22:39:46Z"}`
	beat := `{"v":1,"ip":"10.0.0.1","hostname":"n1","time":"2026-11-24T22:39:46Z","interval_s":5,` +
		`"hardware":{"IP":"10.0.0.1","CPU":2,"RAM":4049952,"DISK":54988.8},"cpu_pct":1.2,"mem_pct":40.1,"disk_pct":8,"components":[]}`
	execReq := `{"v":1,"node":"10.0.0.1","run":"r1","cmd":"true","timeout_ms":1000,"time":1,"nonce":"n"}`
	renamed := func(doc []byte) []byte {
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		s := dig(m, "components", "schemas", "DeploymentEvent")
		props := s["properties"].(map[string]any)
		props["status"] = props["state"]
		delete(props, "state")
		s["required"] = []any{"v", "id", "status", "changed", "time"}
		out, _ := json.Marshal(m)
		return out
	}
	for _, tt := range []struct {
		name, subject, payload string
		edit                   func([]byte) []byte
		want                   []string // in the error; none for no error
	}{
		{"as documented", "de.evt.deploy.d-1.finished", good, nil, nil},
		{"a kind of no channel", "de.evt.deploy.d-1.paused", good, nil, []string{"no channel"}},
		{"a family of no channel", "de.evt.gossip.x", `{}`, nil, []string{"no channel"}},
		{"a command subject", subject.DeployStart(), `{}`, nil, []string{"no channel"}},
		{"a field the type lacks", "de.evt.deploy.d-1.finished", strings.Replace(good, `"v":1`, `"v":1,"nodes":3`, 1), nil,
			[]string{"deploymentFinished", "nodes"}},
		{"a field of another type", "de.evt.deploy.d-1.finished", strings.Replace(good, `"changed":3`, `"changed":"3"`, 1), nil,
			[]string{"changed"}},
		{"a time that is none", "de.evt.deploy.d-1.finished", strings.Replace(good, `2026-11-24T22:39:46Z`, `yesterday`, 1), nil,
			[]string{"date-time"}},
		{"a required field missing", "de.evt.deploy.d-1.finished", strings.Replace(good, `"state":"succeeded",`, ``, 1), nil,
			[]string{"state"}},
		{"another deployment in the subject", "de.evt.deploy.d-2.finished", good, nil, []string{`{deployment} is "d-2"`, "d-1"}},
		{"the document renames a field", "de.evt.deploy.d-1.finished", good, renamed, []string{"status"}},
		{"not JSON", "de.evt.deploy.d-1.finished", `{"v":1`, nil, []string{"not JSON"}},
		{"an agent's heartbeat", subject.Node("10.0.0.1", subject.VerbHeartbeat), beat, nil, nil},
		{"a heartbeat of a field the type lacks", subject.Node("10.0.0.1", subject.VerbHeartbeat),
			strings.Replace(beat, `"v":1`, `"v":1,"load":2`, 1), nil, []string{"nodeHeartbeat", "load"}},
		{"a verb of no channel", subject.Node("10.0.0.1", "gossip"), `{}`, nil, []string{"no channel"}},
		{"a hello with a body", subject.Node("10.0.0.1", subject.VerbHello), `{}`, nil, []string{"nodeHello", "has none"}},
		{"a hello", subject.Node("10.0.0.1", subject.VerbHello), ``, nil, nil},
		{"an exec request not sealed", subject.Node("10.0.0.1", subject.VerbExec), execReq, nil, []string{"not sealed"}},
		{"a sealed exec request", subject.Node("10.0.0.1", subject.VerbExec),
			string(nodeexec.Seal([]byte("k"), []byte(execReq))), nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			doc := asyncDoc(t)
			if tt.edit != nil {
				doc = tt.edit(doc)
			}
			ck, err := asyncapitest.Load(doc)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ck.Check(tt.subject, []byte(tt.payload))
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
			t.Logf("caught: %s", strings.SplitN(err.Error(), "\n", 2)[0])
		})
	}
}

// followEvents holds every event published on nc's server while the test
// runs to the AsyncAPI document: at its end, each event seen is checked,
// and drift fails t.
func followEvents(t *testing.T, nc *nats.Conn) {
	t.Helper()
	ck, err := asyncapitest.Load(asyncDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(subject.AllEvents, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = nc.FlushTimeout(5 * time.Second)
		_ = sub.Unsubscribe()
		seen := map[string]int{}
		for len(msgs) > 0 {
			m := <-msgs
			ch, err := ck.Check(m.Subject, m.Data)
			if err != nil {
				t.Errorf("AsyncAPI drift: %v", err)
			}
			seen[ch]++
		}
		t.Logf("events held to the AsyncAPI document, by channel: %v", seen)
	})
}
