package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// POST /copy: the operate role puts a file on nodes, read is refused; a
// file of 4 MiB (a body over the API's 1 MiB) reaches the planner whole
// with the token's name as its actor, a body over 6 MiB is a 413; a field
// the route does not take is a 400 naming it; the audit records the
// direction and path, the nodes, the size and checksum, never the content,
// and a refused copy as "copy" alone.
func TestCopyRoute(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	followEvents(t, b.NC)
	var mu sync.Mutex
	var seen []contract.FleetCopy
	_, err := b.NC.Subscribe(subject.DeployCopy(), func(m *nats.Msg) {
		var in contract.FleetCopy
		_ = json.Unmarshal(m.Data, &in)
		mu.Lock()
		seen = append(seen, in)
		mu.Unlock()
		r := nats.NewMsg(m.Reply)
		if ps := in.Problems(); len(ps) > 0 {
			body, _ := json.Marshal(contract.ErrorBody{Error: "copy refused: " + ps[0].Path + ": " + ps[0].Reason, Problems: ps})
			r.Header.Set("De-Code", "400")
			r.Data = body
		} else {
			r.Header.Set("De-Code", "202")
			r.Data, _ = json.Marshal(contract.FleetCopyStarted{ID: "d-20261124-223905-1a2b", To: in.To, Nodes: []string{"10.0.0.1", "10.0.0.2"},
				Size: len(in.Content), SHA256: strings.Repeat("ab", 32)})
		}
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	tokens := &tokenTable{m: map[string]Grant{operateTok: {Name: "olga", Role: RoleOperate}, readTok: {Name: "grafana", Role: RoleRead}}}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	defer ts.Close()
	post := func(tok, body string) (int, string) {
		resp, out := do(t, "POST", ts.URL+prefix+"/copy", body, "Authorization", "Bearer "+tok)
		return resp.StatusCode, string(out)
	}
	secret := "file-content-never-audited"
	big := bytes.Repeat([]byte(secret), contract.MaxCopyBytes/len(secret))
	copyBody := func(to string, content []byte, extra string) string {
		return fmt.Sprintf(`{"component": "web", "to": %q, "content_base64": %q%s}`, to, base64.StdEncoding.EncodeToString(content), extra)
	}
	if code, body := post(operateTok, copyBody("/opt/big.bin", big, `, "mode": "0600", "max_in_flight": "50%"`)); code != 202 || !strings.Contains(body, `"to":"/opt/big.bin"`) {
		t.Fatalf("copy of %d bytes: %d %.300s", len(big), code, body)
	}
	mu.Lock()
	if len(seen) != 1 || seen[0].Actor != "olga" || seen[0].V != contract.Version || !bytes.Equal(seen[0].Content, big) ||
		seen[0].Mode != "0600" || seen[0].MaxInFlight != "50%" {
		t.Errorf("the planner got %d requests, the first with %d bytes", len(seen), len(seen[0].Content))
	}
	mu.Unlock()

	tooBig := base64.StdEncoding.EncodeToString(make([]byte, 5<<20))
	for _, tc := range []struct {
		body string
		code int
		says string
	}{
		{copyBody("/etc/motd", []byte("hi"), `, "actor": "mallory"`), 400, "actor"},
		{copyBody("/etc/motd", []byte("hi"), `, "from": "/etc/shadow"`), 400, "from"},
		{`{"component": "web", "to": "/etc/motd", "content_base64": "%%%"}`, 400, "base64"},
		{`{"component": "web", "to": "/etc/motd", "content_base64": "aGk=", "max_in_flight": true}`, 400, "max_in_flight"},
		{`{"component": "web", "to": "/etc/motd", "content_base64": "` + tooBig + `"}`, 413, "larger than 6 MiB"},
		{copyBody("/var/lib/deployment-engine/owner", []byte("e-evil"), ""), 400, "/var/lib/deployment-engine"},
	} {
		if code, body := post(operateTok, tc.body); code != tc.code || !strings.Contains(body, tc.says) {
			t.Errorf("%.80s: %d %.300s, want %d saying %s", tc.body, code, body, tc.code, tc.says)
		}
	}
	if code, body := post(readTok, copyBody("/etc/motd", []byte("hi"), "")); code != 403 || !strings.Contains(body, "needs the operate role") {
		t.Errorf("as read: %d %s", code, body)
	}
	mu.Lock()
	// The first copy, and the one with both "to" and "from", which the
	// planner refuses.
	if len(seen) != 3 {
		t.Errorf("%d requests reached the planner, want 3", len(seen))
	}
	mu.Unlock()

	entries := auditOfActor(t, ts, "olga", 7)
	var ok, refused int
	for _, e := range entries {
		if strings.Contains(fmt.Sprint(e), secret) {
			t.Errorf("the file's content is in the audit: %.200v", e)
		}
		switch {
		case e.Action != contract.AuditCopy:
			t.Errorf("entry: %+v", e)
		case e.Code == http.StatusAccepted:
			ok++
			if e.Object != "to /opt/big.bin" || e.Deployment != "d-20261124-223905-1a2b" || e.Result != "ok" ||
				!strings.Contains(e.Detail, "on 10.0.0.1, 10.0.0.2") || !strings.Contains(e.Detail, fmt.Sprintf("%d bytes", len(big))) {
				t.Errorf("copy entry: %+v", e)
			}
		default:
			refused++
			if e.Object != "copy" || e.Result != "failed" {
				t.Errorf("refused copy entry: %+v", e)
			}
		}
	}
	if ok != 1 || refused != 6 {
		t.Errorf("%d copy entries, %d refused; want 1 and 6: %+v", ok, refused, entries)
	}
	if e := auditOfActor(t, ts, "grafana", 1); e[0].Code != http.StatusForbidden || e[0].Action != contract.AuditCopy {
		t.Errorf("grafana's entry: %+v", e[0])
	}
}

// GET /deployments/{id}/files/{ip}: the operate role gets the file a copy
// from the nodes read back from one node, byte for byte with its SHA-256;
// the read role is refused; a node, deployment or address with no file is
// a 404. POST /copy with "from" is audited as "from <path>".
func TestCopiedFileRoute(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	followEvents(t, b.NC)
	_, err := b.NC.Subscribe(subject.DeployCopy(), func(m *nats.Msg) {
		var in contract.FleetCopy
		_ = json.Unmarshal(m.Data, &in)
		r := nats.NewMsg(m.Reply)
		r.Header.Set("De-Code", "202")
		r.Data, _ = json.Marshal(contract.FleetCopyStarted{ID: "d-20261124-223905-1a2b", From: in.From, Nodes: []string{"10.0.0.1"}})
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("root:x:0:0\n\x00\xff binary too")
	if _, err := b.Res.Copies.PutBytes(context.Background(), bus.CopyObject("d-20261124-223905-1a2b", "10.0.0.1"), content); err != nil {
		t.Fatal(err)
	}
	tokens := &tokenTable{m: map[string]Grant{operateTok: {Name: "olga", Role: RoleOperate}, readTok: {Name: "grafana", Role: RoleRead}}}
	h, err := New(Options{NC: b.NC, Token: adminTok, Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	defer ts.Close()
	if resp, out := do(t, "POST", ts.URL+prefix+"/copy", `{"nodes": ["10.0.0.1"], "from": "/etc/passwd"}`, "Authorization", "Bearer "+operateTok); resp.StatusCode != 202 ||
		!strings.Contains(string(out), `"from":"/etc/passwd"`) {
		t.Fatalf("copy from: %d %s", resp.StatusCode, out)
	}
	if e := auditOfActor(t, ts, "olga", 1); e[0].Object != "from /etc/passwd" || e[0].Detail != "on 10.0.0.1" {
		t.Errorf("audit: %+v", e[0])
	}
	sum := sha256.Sum256(content)
	for _, tc := range []struct {
		path, tok string
		code      int
		says      string
	}{
		{"/deployments/d-20261124-223905-1a2b/files/10.0.0.1", operateTok, 200, string(content)},
		{"/deployments/d-20261124-223905-1a2b/files/10.0.0.1", readTok, 403, "needs the operate role"},
		{"/deployments/d-20261124-223905-1a2b/files/10.0.0.2", operateTok, 404, "no file read back"},
		{"/deployments/d-other/files/10.0.0.1", operateTok, 404, "no file read back"},
		{"/deployments/d-20261124-223905-1a2b/files/node-1", operateTok, 404, "no file read back"},
		{"/deployments/d.*/files/10.0.0.1", operateTok, 404, "no file read back"},
	} {
		resp, out := do(t, "GET", ts.URL+prefix+tc.path, "", "Authorization", "Bearer "+tc.tok)
		if resp.StatusCode != tc.code || !strings.Contains(string(out), tc.says) {
			t.Errorf("%s: %d %.200q, want %d saying %q", tc.path, resp.StatusCode, out, tc.code, tc.says)
		}
		if tc.code == 200 && (string(out) != string(content) || resp.Header.Get("X-Content-SHA256") != hex.EncodeToString(sum[:])) {
			t.Errorf("%s: %q, sha256 %s", tc.path, out, resp.Header.Get("X-Content-SHA256"))
		}
	}
}
