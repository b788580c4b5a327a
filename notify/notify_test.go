package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// receiver is a webhook that records what it got and answers 503 while
// it is "down".
type receiver struct {
	mu   sync.Mutex
	got  []contract.Notification
	sigs []string
	down atomic.Bool
	hits atomic.Int32
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.hits.Add(1)
	if r.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(req.Body)
	var n contract.Notification
	_ = json.Unmarshal(body, &n)
	r.mu.Lock()
	r.got = append(r.got, n)
	r.sigs = append(r.sigs, fmt.Sprintf("%v", req.Header.Get(HeaderSignature) == Sign([]byte("s3cret"), body)))
	r.mu.Unlock()
}

func (r *receiver) events() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ev []string
	for _, n := range r.got {
		ev = append(ev, n.Event)
	}
	return ev, append([]string(nil), r.sigs...)
}

func setup(t *testing.T, downAfter int) (*bustest.Bus, *receiver, Options) {
	t.Helper()
	b := bustest.Start(t, bus.ServerOptions{})
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	cfg := fmt.Sprintf(`{"components": {}, "properties": {"notify": {"down_after_s": %d, "webhooks": [{"name": "ops", "url": %q, "secret": "s3cret"}]}}}`, downAfter, srv.URL)
	if _, err := b.Res.Config.Put(context.Background(), bus.KeyConfig, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	return b, rcv, Options{Res: b.Res, Backoff: 200 * time.Millisecond, MaxAttempts: 4, Every: 200 * time.Millisecond, Policy: allowLoopback}
}

// allowLoopback lets the tests' receivers, all on loopback, be reached.
var allowLoopback = contract.WebhookPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}

func publish(t *testing.T, b *bustest.Bus, subj string, v any) {
	t.Helper()
	data, _ := json.Marshal(v)
	if _, err := b.Res.JS.Publish(context.Background(), subj, data); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("%s: not within %s", what, within)
}

func TestSignedAndRetriedAcrossARestart(t *testing.T) {
	b, rcv, o := setup(t, 60)
	n, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	publish(t, b, subject.DeployEvent("d-1", subject.DeployFinished), contract.DeploymentEvent{V: 1, ID: "d-1", State: "failed", Error: "1 step(s) failed", Time: time.Now()})
	waitFor(t, 5*time.Second, "deployment.failed delivered", func() bool { ev, _ := rcv.events(); return len(ev) == 1 })
	ev, sigs := rcv.events()
	if ev[0] != "deployment.failed" || sigs[0] != "true" {
		t.Fatalf("got %v, signature valid: %v", ev, sigs)
	}

	// The receiver is down: retried, then the notifier stops with the
	// event undelivered; a new one delivers it once the receiver is back.
	rcv.down.Store(true)
	publish(t, b, subject.HealEvent("meltdown"), contract.HealEvent{V: 1, Kind: "meltdown", Time: time.Now(), Message: "3 of 4 down"})
	waitFor(t, 5*time.Second, "retried", func() bool { return rcv.hits.Load() >= 3 })
	if v := testutil.ToFloat64(n.failed.WithLabelValues("ops")); v < 1 {
		t.Fatalf("failed attempts %v", v)
	}
	n.Stop()
	rcv.down.Store(false)
	n2, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Stop()
	waitFor(t, 30*time.Second, "heal.meltdown delivered after the restart", func() bool { ev, _ := rcv.events(); return len(ev) == 2 })
	ev, sigs = rcv.events()
	if ev[1] != "heal.meltdown" || sigs[1] != "true" {
		t.Fatalf("got %v %v", ev, sigs)
	}
}

func TestDeadLetterAndDownAfter(t *testing.T) {
	b, rcv, o := setup(t, 1)
	n, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	// Down, then up again within down_after_s: nothing is sent.
	publish(t, b, subject.ComponentEvent("web", "10.9.0.1", false), contract.ComponentEvent{V: 1, Component: "web", IP: "10.9.0.1", Time: time.Now(), Reason: "monit: does not exist"})
	publish(t, b, subject.ComponentEvent("web", "10.9.0.1", true), contract.ComponentEvent{V: 1, Component: "web", IP: "10.9.0.1", Up: true, Time: time.Now()})
	// Down and staying down: sent after down_after_s.
	publish(t, b, subject.ComponentEvent("db", "10.9.0.2", false), contract.ComponentEvent{V: 1, Component: "db", IP: "10.9.0.2", Time: time.Now(), Reason: "monit: does not exist"})
	waitFor(t, 10*time.Second, "component.down", func() bool { ev, _ := rcv.events(); return len(ev) == 1 })
	time.Sleep(500 * time.Millisecond)
	rcv.mu.Lock()
	got := rcv.got
	rcv.mu.Unlock()
	if len(got) != 1 || got[0].Event != "component.down" || got[0].Summary == "" {
		t.Fatalf("got %+v", got)
	}
	if d, _ := json.Marshal(got[0].Data); !json.Valid(d) || !strings.Contains(string(d), "10.9.0.2") {
		t.Fatalf("component.down is about %s", d)
	}
	// Never answered: a dead letter after MaxAttempts.
	rcv.down.Store(true)
	publish(t, b, subject.DeployEvent("d-2", subject.DeployStarted), contract.DeploymentEvent{V: 1, ID: "d-2", State: "pending", Time: time.Now()})
	waitFor(t, 20*time.Second, "a dead letter", func() bool { return testutil.ToFloat64(n.dead.WithLabelValues("ops")) == 1 })
	if h := rcv.hits.Load(); h != 1+4 {
		t.Fatalf("%d requests, want the component.down and 4 attempts", h)
	}
}

func TestWanted(t *testing.T) {
	cases := []struct {
		filter []string
		event  string
		want   bool
	}{
		{nil, "deployment.failed", true},
		{[]string{"deployment.failed"}, "deployment.failed", true},
		{[]string{"deployment.failed"}, "deployment.started", false},
		{[]string{"heal.*"}, "heal.meltdown", true},
		{[]string{"heal.*"}, "component.down", false},
	}
	for _, c := range cases {
		if got := wanted(c.filter, c.event); got != c.want {
			t.Errorf("wanted(%v, %s) = %v", c.filter, c.event, got)
		}
	}
}

// A Slack-style webhook gets {"text": ...}; its URL never shows in an
// error (it is the credential).
func TestSlackFormat(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	var got atomic.Value
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hits.Add(1)
		got.Store(string(body))
	}))
	defer srv.Close()
	cfg := fmt.Sprintf(`{"components": {}, "properties": {"notify": {"webhooks": [{"url": %q, "format": "slack", "events": ["deployment.failed"]}]}}}`, srv.URL+"/T0/B0/xyz")
	if _, err := b.Res.Config.Put(context.Background(), bus.KeyConfig, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	n, err := Start(context.Background(), Options{Res: b.Res, Every: 200 * time.Millisecond, Policy: allowLoopback})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	// Not in the filter: not sent.
	publish(t, b, subject.DeployEvent("d-1", subject.DeployStarted), contract.DeploymentEvent{V: 1, ID: "d-1", State: "pending", Time: time.Now()})
	publish(t, b, subject.DeployEvent("d-1", subject.DeployFinished), contract.DeploymentEvent{V: 1, ID: "d-1", State: "failed", Error: "1 step(s) failed", Time: time.Now()})
	waitFor(t, 5*time.Second, "the slack message", func() bool { return got.Load() != nil })
	var msg map[string]string
	if err := json.Unmarshal([]byte(got.Load().(string)), &msg); err != nil || len(msg) != 1 || !strings.Contains(msg["text"], "deployment d-1 failed: 1 step(s) failed") {
		t.Fatalf("slack body %v: %v", got.Load(), err)
	}
	time.Sleep(300 * time.Millisecond)
	if h := hits.Load(); h != 1 {
		t.Fatalf("%d requests: deployment.started is not in the filter", h)
	}
	err = n.post(contract.Webhook{URL: "http://127.0.0.1:1/T0/B0/secretpart", Format: "slack"}, contract.Notification{Event: "x"}, 1)
	if err == nil || strings.Contains(err.Error(), "secretpart") {
		t.Fatalf("error %v shows the URL", err)
	}
}

// counter is an HTTP server on addr that counts its requests and answers
// with answer.
func counter(t *testing.T, addr string, answer http.HandlerFunc) (string, *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		answer(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL, &hits
}

// A loopback listener (monit's port, say) never gets a webhook's POST
// unless the operator allows loopback: not addressed directly, not by a
// name that resolves to it, not through a redirect from a server that is
// allowed. Each is a failed delivery with its reason.
func TestWebhookNeverReachesRefusedAddresses(t *testing.T) {
	target, hits := counter(t, "127.0.0.1:0", func(http.ResponseWriter, *http.Request) {})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(target, "http://"))
	// The redirecting server is on 127.0.0.2, the one address allowed.
	redirect, redirects := counter(t, "127.0.0.2:0", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target+"/hook", http.StatusTemporaryRedirect)
	})
	policy := contract.WebhookPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	hooks := []struct{ name, url, want string }{
		{"direct", target + "/hook", "127.0.0.1 is a loopback address; allow its network with serve --webhook-allow"},
		{"by-name", "http://localhost:" + port + "/hook", "is a loopback address"},
		{"redirect", redirect + "/hook", "307 Temporary Redirect: redirects are not followed"},
	}

	// One delivery each, failing with its reason.
	n := &Notifier{o: Options{Policy: policy}, client: newClient(policy)}
	for _, h := range hooks {
		err := n.post(contract.Webhook{URL: h.url}, contract.Notification{Event: "x"}, 1)
		if err == nil || !strings.Contains(err.Error(), h.want) {
			t.Errorf("%s: got %v, want %q", h.name, err, h.want)
		}
	}
	if redirects.Load() != 1 {
		t.Errorf("the allowed server got %d requests, want 1", redirects.Load())
	}

	// Through the event stream, until each is a dead letter.
	b := bustest.Start(t, bus.ServerOptions{})
	var ws []contract.Webhook
	for _, h := range hooks {
		ws = append(ws, contract.Webhook{Name: h.name, URL: h.url})
	}
	cfg, _ := json.Marshal(contract.Config{Components: map[string][]string{}, Properties: contract.Properties{Notify: &contract.NotifyConfig{Webhooks: ws}}})
	if _, err := b.Res.Config.Put(context.Background(), bus.KeyConfig, cfg); err != nil {
		t.Fatal(err)
	}
	n, err := Start(context.Background(), Options{Res: b.Res, Backoff: 50 * time.Millisecond, MaxAttempts: 2, Every: time.Hour, Policy: policy})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	publish(t, b, subject.DeployEvent("d-1", subject.DeployFinished), contract.DeploymentEvent{V: 1, ID: "d-1", State: "failed", Error: "x", Time: time.Now()})
	for _, h := range hooks {
		waitFor(t, 10*time.Second, h.name+" given up", func() bool { return testutil.ToFloat64(n.dead.WithLabelValues(h.name)) == 1 })
	}
	if h := hits.Load(); h != 0 {
		t.Fatalf("the loopback listener got %d requests", h)
	}

	// Allowed explicitly, the same listener gets the POST.
	allow := contract.WebhookPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	n2 := &Notifier{o: Options{Policy: allow}, client: newClient(allow)}
	if err := n2.post(contract.Webhook{URL: target + "/hook"}, contract.Notification{Event: "x"}, 1); err != nil || hits.Load() != 1 {
		t.Fatalf("allowed: %v, %d requests", err, hits.Load())
	}
}

// A literal refused address is refused before anything is dialled; the
// dialler refuses it too, before it connects.
func TestWebhookLiteralAddressNotDialled(t *testing.T) {
	var dialled atomic.Bool
	n := &Notifier{client: &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) {
		dialled.Store(true)
		return nil, fmt.Errorf("dialled")
	})}}
	err := n.post(contract.Webhook{URL: "http://169.254.169.254/latest/meta-data/", Secret: "s"}, contract.Notification{Event: "x"}, 1)
	if err == nil || !errors.Is(err, contract.ErrWebhookAddress) || !strings.Contains(err.Error(), "169.254.169.254 is a link-local address") || dialled.Load() {
		t.Fatalf("got %v, dialled %v", err, dialled.Load())
	}
	for _, addr := range []string{"169.254.169.254:80", "[fe80::1%lo]:80", "127.0.0.1:2812"} {
		if err := dialControl(contract.WebhookPolicy{})("tcp", addr, nil); !errors.Is(err, contract.ErrWebhookAddress) {
			t.Errorf("dial %s: %v", addr, err)
		}
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A certificate near its end, as the engine warns of it, reaches the
// webhooks as certificate.expiring, with the certificate; the engine's
// other operations do not.
func TestCertificateExpiringNotified(t *testing.T) {
	b, rcv, o := setup(t, 60)
	n, err := Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Stop()
	publish(t, b, subject.EngineEvent("restart"), contract.EngineEvent{V: 1, Kind: "restart", Time: time.Now(), Message: "restart web on 10.0.0.1: ok"})
	now := time.Now()
	cert := contract.Certificate{Name: contract.CertAgentsCA, Subject: "CN=deployment-engine", NotAfter: now.Add(20 * 24 * time.Hour)}
	if _, err := bus.WarnCertificates(context.Background(), b.Res.JS, b.Res.Engine, []contract.Certificate{cert}, now); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "certificate.expiring delivered", func() bool { ev, _ := rcv.events(); return len(ev) >= 1 })
	time.Sleep(300 * time.Millisecond)
	ev, sigs := rcv.events()
	if len(ev) != 1 || ev[0] != "certificate.expiring" || sigs[0] != "true" {
		t.Fatalf("got %v, signature valid: %v", ev, sigs)
	}
	rcv.mu.Lock()
	note := rcv.got[0]
	rcv.mu.Unlock()
	data, _ := json.Marshal(note.Data)
	var got contract.EngineEvent
	if err := json.Unmarshal(data, &got); err != nil || got.Certificate == nil || got.Certificate.Name != contract.CertAgentsCA || got.WarnDays != 30 {
		t.Fatalf("data %s: %v", data, err)
	}
	if !strings.Contains(note.Summary, "certificate agents-ca") || !strings.Contains(note.Summary, "fewer than 30") {
		t.Fatalf("summary %q", note.Summary)
	}
}

func TestDescribeEngineEvents(t *testing.T) {
	cert := contract.EngineEvent{V: 1, Kind: contract.EventCertificate, Time: time.Now(), Message: "certificate api expires"}
	for _, tc := range []struct {
		name, subj string
		ev         any
		want       string // "" for not notified
	}{
		{"certificate", subject.EngineEvent(contract.EventCertificate), cert, "certificate.expiring"},
		{"another kind", subject.EngineEvent("restart"), contract.EngineEvent{V: 1, Kind: "restart"}, ""},
		{"a kind the subject does not say", subject.EngineEvent("restart"), cert, ""},
		{"not JSON", subject.EngineEvent(contract.EventCertificate), "{", ""},
	} {
		data, _ := json.Marshal(tc.ev)
		if s, ok := tc.ev.(string); ok {
			data = []byte(s)
		}
		note, ok := describe(tc.subj, data)
		if ok != (tc.want != "") || note.Event != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.name, note.Event, ok, tc.want)
		}
	}
}
