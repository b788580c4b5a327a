package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

const followSecret = "s3cret-Pa55word-xyz"

// followConfig places web on .5 and .6 and nats on .7, with a password.
func followConfig(password string) contract.Config {
	return contract.Config{
		Components: map[string][]string{"web": {"10.0.0.5", "10.0.0.6"}, "nats": {"10.0.0.7"}},
		Properties: contract.Properties{Password: password},
	}
}

// followServer is rolesServer with a stored config and a log service that
// serves web_0.log: two runtime lines (the second quoting its file and
// printing the secret), an install line between them and one before.
func followServer(t *testing.T) (string, *nats.Conn, *tokenTable, jetstream.KeyValue) {
	t.Helper()
	ts, nc, tokens, _ := rolesServer(t)
	kv, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	cfgKV, err := kv.KeyValue(context.Background(), bus.KVConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.StoreConfig(context.Background(), cfgKV, followConfig(followSecret)); err != nil {
		t.Fatal(err)
	}
	web0 := "2026-11-25T11:59:00Z [runtime /var/log/web.log] old\n" +
		"2026-11-25T11:59:30Z [d-1 10.0.0.5/web/install stdout] Setting up web\n" +
		"2026-11-25T12:00:00Z [runtime /var/log/web.log] first\n" +
		"2026-11-25T12:00:01Z [d-1 10.0.0.5/web/install stdout] installed\n" +
		`2026-11-25T12:00:02Z [runtime "/var/log/web app.log"] login with <redacted>` + "\n"
	svc, err := micro.AddService(nc, micro.Config{Name: "logsvc", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	read := func(_ context.Context, req micro.Request) (int, any, error) {
		var r contract.LogRead
		if err := kit.Decode(req, &r); err != nil {
			return 0, nil, err
		}
		if r.Name != "web_0.log" {
			return 0, nil, kit.Errorf(404, "no log %q", r.Name)
		}
		off := min(r.Offset, int64(len(web0)))
		return 200, contract.LogChunk{Name: r.Name, Size: int64(len(web0)), Offset: off, Data: []byte(web0[off:])}, nil
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := svc.AddEndpoint(subject.EndpointName(subject.LogsRead()), kit.Endpoint(quiet, read),
		micro.WithEndpointSubject(subject.LogsRead())); err != nil {
		t.Fatal(err)
	}
	return ts.URL, nc, tokens, cfgKV
}

// sse is an open event stream.
type sse struct {
	resp   *http.Response
	events chan [2]string // event, data; closed at the stream's end
	cancel context.CancelFunc
}

func openFollow(t *testing.T, url, query, tok string) *sse {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+prefix+"/logs/follow?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &sse{resp: resp, events: make(chan [2]string, 64), cancel: cancel}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /logs/follow?%s: %d %s", query, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	go func() {
		defer close(s.events)
		br := bufio.NewReader(resp.Body)
		var ev string
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(line, "event: "):
				ev = strings.TrimSpace(line[len("event: "):])
			case strings.HasPrefix(line, "data: "):
				s.events <- [2]string{ev, strings.TrimSpace(line[len("data: "):])}
			}
		}
	}()
	return s
}

// next is the next line event, or fails after 3 s.
func (s *sse) next(t *testing.T) contract.FollowLine {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the stream ended")
		}
		var l contract.FollowLine
		if ev[0] != "line" || json.Unmarshal([]byte(ev[1]), &l) != nil {
			t.Fatalf("event %q: %s", ev[0], ev[1])
		}
		return l
	case <-time.After(3 * time.Second):
		t.Fatal("no line within 3 s")
	}
	return contract.FollowLine{}
}

// agentLine publishes a line as the agent of ip does for comp.
func agentLine(t *testing.T, nc *nats.Conn, ip, comp, line string) {
	t.Helper()
	b, _ := json.Marshal(contract.LogLine{V: contract.Version, Node: ip, Component: comp, Stream: "/var/log/" + comp + ".log",
		Seq: 1, Time: time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC), Line: line})
	if err := nc.Publish(subject.NodeLog(ip, comp), b); err != nil {
		t.Fatal(err)
	}
}

// The tail comes first (runtime lines only), then the live lines of the
// config's instances of the component: another component's, a node's
// that does not run it, and a body that is not JSON are left out; a
// config's secret is redacted, the new one once the config changes.
func TestFollowLogs(t *testing.T) {
	url, nc, _, kv := followServer(t)
	s := openFollow(t, url, "component=web&tail=2", readTok)

	for _, want := range []contract.FollowLine{
		{Node: "10.0.0.5", Component: "web", Instance: "web_0.log", File: "/var/log/web.log", Line: "first", Tail: true,
			Time: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)},
		{Node: "10.0.0.5", Component: "web", Instance: "web_0.log", File: "/var/log/web app.log", Line: "login with <redacted>", Tail: true,
			Time: time.Date(2026, 11, 25, 12, 0, 2, 0, time.UTC)},
	} {
		if got := s.next(t); got != want {
			t.Errorf("tail:\n got %+v\nwant %+v", got, want)
		}
	}

	agentLine(t, nc, "10.0.0.6", "nats", "not followed")
	agentLine(t, nc, "10.0.0.7", "web", "web does not run on .7")
	if err := nc.Publish(subject.NodeLog("10.0.0.5", "web"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	agentLine(t, nc, "10.0.0.5", "web", "password="+followSecret+" ok")
	agentLine(t, nc, "10.0.0.6", "web", "from six")
	want := []contract.FollowLine{
		{Node: "10.0.0.5", Component: "web", Instance: "web_0.log", File: "/var/log/web.log", Line: "password=<redacted> ok",
			Time: time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC)},
		{Node: "10.0.0.6", Component: "web", Instance: "web_1.log", File: "/var/log/web.log", Line: "from six",
			Time: time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC)},
	}
	for _, w := range want {
		if got := s.next(t); got != w {
			t.Errorf("live:\n got %+v\nwant %+v", got, w)
		}
	}

	// A new config: its secret is redacted from then on, and .6 is no
	// longer web's.
	cfg := followConfig("an0ther-Secret-value")
	cfg.Components["web"] = []string{"10.0.0.5"}
	if err := bus.StoreConfig(context.Background(), kv, cfg); err != nil {
		t.Fatal(err)
	}
	// The follower learns the config from a watch of the store: within a
	// moment, longer on a busy machine (a CI run saw more than 3 s).
	deadline := time.Now().Add(20 * time.Second)
	for {
		agentLine(t, nc, "10.0.0.5", "web", "key an0ther-Secret-value")
		got := s.next(t)
		if got.Line == "key <redacted>" {
			break
		}
		if got.Line != "key an0ther-Secret-value" || time.Now().After(deadline) {
			t.Fatalf("the new config did not take: %+v", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	agentLine(t, nc, "10.0.0.6", "web", "six once more")
	agentLine(t, nc, "10.0.0.5", "web", "last")
	if got := s.next(t); got.Line != "last" {
		t.Fatalf("a line of a node the config no longer places web on: %+v", got)
	}
}

// With ip, only that instance's lines come.
func TestFollowLogsOneNode(t *testing.T) {
	url, nc, _, _ := followServer(t)
	s := openFollow(t, url, "component=web&ip=10.0.0.6", readTok)
	agentLine(t, nc, "10.0.0.5", "web", "five")
	agentLine(t, nc, "10.0.0.6", "web", "six")
	if got := s.next(t); got.Node != "10.0.0.6" || got.Line != "six" || got.Instance != "web_1.log" || got.Tail {
		t.Fatalf("got %+v", got)
	}
}

// A query at fault answers 400 naming its field; a token that does not
// reach the cluster gets 403.
func TestFollowLogsRefuses(t *testing.T) {
	url, _, _, _ := followServer(t)
	for _, tc := range []struct {
		query, tok string
		code       int
		field      string
	}{
		{"", readTok, 400, "component"},
		{"component=db", readTok, 400, "component"},
		{"component=a.b", readTok, 400, "component"},
		{"component=web&ip=10.0.0.7", readTok, 400, "ip"},
		{"component=web&ip=web", readTok, 400, "ip"},
		{"component=web&tail=-1", readTok, 400, "tail"},
		{"component=web&tail=1001", readTok, 400, "tail"},
		{"component=web&tail=x", readTok, 400, "tail"},
		{"component=web", prodTok, 403, ""},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, body := do(t, "GET", url+prefix+"/logs/follow?"+tc.query, "", "Authorization", "Bearer "+tc.tok)
			var e contract.ErrorBody
			if resp.StatusCode != tc.code || json.Unmarshal(body, &e) != nil {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.code)
			}
			if tc.field != "" && (len(e.Problems) != 1 || e.Problems[0].Path != tc.field || !strings.HasPrefix(e.Error, tc.field+": ")) {
				t.Fatalf("%s does not name %s", body, tc.field)
			}
		})
	}
}

// Before any config there is nothing to follow: 403, as the manual's
// routes answer.
func TestFollowLogsNoConfig(t *testing.T) {
	ts, _, _, _ := rolesServer(t)
	resp, body := do(t, "GET", ts.URL+prefix+"/logs/follow?component=web", "", "Authorization", "Bearer "+readTok)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "no config") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// A revoked token's stream ends within a second.
func TestFollowLogsEndsOnRevocation(t *testing.T) {
	url, nc, tokens, _ := followServer(t)
	alice := Grant{Name: "alice", Role: RoleDeploy}
	tokens.set(writeTok, &alice)
	s := openFollow(t, url, "component=web", writeTok)
	agentLine(t, nc, "10.0.0.5", "web", "before")
	s.next(t)
	tokens.set(writeTok, nil)
	revoked := time.Now()
	for {
		select {
		case _, ok := <-s.events:
			if !ok {
				if took := time.Since(revoked); took > time.Second {
					t.Fatalf("ended %v after the revocation", took)
				}
				return
			}
		case <-time.After(1500 * time.Millisecond):
			t.Fatal("still open 1.5 s after the revocation")
		}
	}
}

// A client that falls followBuffer lines behind is cut: the bus's callback
// never blocks, and the relay ends with a "cut" event.
func TestFollowerCutsSlowClient(t *testing.T) {
	f, err := newFollower(followConfig(followSecret), followQuery{component: "web"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(contract.LogLine{V: 1, Line: "x"})
	for range followBuffer + 1 {
		f.take(&nats.Msg{Subject: subject.NodeLog("10.0.0.5", "web"), Data: b})
	}
	select {
	case <-f.cut:
	default:
		t.Fatal("not cut")
	}
	rec := &flushRecorder{}
	f.relay(context.Background(), rec, rec)
	if !strings.Contains(rec.String(), "event: cut\n") {
		t.Fatalf("no cut event: %.200s", rec.String())
	}
}

type flushRecorder struct {
	strings.Builder
	hdr http.Header
}

func (r *flushRecorder) Header() http.Header {
	if r.hdr == nil {
		r.hdr = http.Header{}
	}
	return r.hdr
}
func (r *flushRecorder) WriteHeader(int) {}
func (r *flushRecorder) Flush()          {}

// The store's runtime lines parse back; other lines do not.
func TestParseRuntimeLine(t *testing.T) {
	for _, tc := range []struct {
		in, file, line string
		ok             bool
	}{
		{"2026-11-25T12:00:00Z [runtime /var/log/a.log] hello world", "/var/log/a.log", "hello world", true},
		{`2026-11-25T12:00:00Z [runtime "x] [y"] z`, "x] [y", "z", true},
		{"2026-11-25T12:00:00Z [runtime -] z", "", "z", true},
		{"2026-11-25T12:00:00Z [d-1 s stdout] install", "", "", false},
		{"not a time [runtime a] b", "", "", false},
		{`2026-11-25T12:00:00Z [runtime "unterminated] b`, "", "", false},
		{"", "", "", false},
	} {
		_, file, line, ok := parseRuntimeLine(tc.in)
		if ok != tc.ok || file != tc.file || line != tc.line {
			t.Errorf("%q: %q %q %v", tc.in, file, line, ok)
		}
	}
}
