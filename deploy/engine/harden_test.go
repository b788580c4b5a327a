package engine

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/api"
)

// engineWith runs Serve with o on a fresh data dir and returns its
// address (host:port). It stops when the test ends.
func engineWith(t *testing.T, o Options) string {
	t.Helper()
	addr, stop := engineStop(t, o)
	t.Cleanup(stop)
	return addr
}

// engineStop is engineWith with a stop of its own.
func engineStop(t *testing.T, o Options) (string, func()) {
	t.Helper()
	t.Setenv("DE_API_TOKEN", token)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	o.Listen, o.Logger = "127.0.0.1:0", slog.New(slog.NewTextHandler(io.Discard, nil))
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	o.Ready = func(a string) { addr <- a }
	go func() { done <- Serve(ctx, o) }()
	select {
	case a := <-addr:
		var once sync.Once
		return a, func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("serve: %v", err)
				}
			})
		}
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("engine did not start")
	}
	cancel()
	return "", func() {}
}

// trickle opens a raw connection, sends head, then one byte of body every
// interval until stop closes or the server hangs up.
type trickler struct {
	conn net.Conn
	resp chan string // the status line, or "" when the server closed without one
}

func trickle(t *testing.T, addr, head string, every time.Duration, stop <-chan struct{}) *trickler {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tr := &trickler{conn: c, resp: make(chan string, 1)}
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		line, _ := bufio.NewReader(c).ReadString('\n')
		tr.resp <- strings.TrimSpace(line)
	}()
	go func() {
		tk := time.NewTicker(every)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := c.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	t.Cleanup(func() { c.Close() })
	return tr
}

// closed tells whether the server has hung up on c within d.
func closed(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		return !errors.As(err, &ne) || !ne.Timeout()
	}
}

// A client without the token that announces a body and trickles it gets
// its 401 at once and its connection closed: 300 of them hold nothing.
func TestSlowUnauthenticatedBodiesGet401AtOnce(t *testing.T) {
	addr := engineWith(t, Options{})
	stop := make(chan struct{})
	defer close(stop)
	const n = 300
	trs := make([]*trickler, n)
	for i := range trs {
		head := "POST /deployment-engine/config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n"
		if i%2 == 1 {
			head += "Authorization: Bearer wrong-token\r\n"
		}
		trs[i] = trickle(t, addr, head+"\r\n{", time.Second, stop)
	}
	deadline := time.After(5 * time.Second)
	for i, tr := range trs {
		select {
		case line := <-tr.resp:
			if !strings.HasPrefix(line, "HTTP/1.1 401") {
				t.Fatalf("connection %d: %q, want a 401", i, line)
			}
		case <-deadline:
			t.Fatalf("connection %d: no answer within 5 s while it trickles its body", i)
		}
	}
	for i, tr := range trs[:20] {
		if !closed(tr.conn, 3*time.Second) {
			t.Errorf("connection %d still open after its 401", i)
		}
	}
	// Health answers throughout.
	if code := get(t, "http://"+addr+"/healthz", ""); code != 200 {
		t.Errorf("healthz under load: %d", code)
	}
}

// A token holder that trickles a body, or anyone who trickles headers, is
// cut at the read timeout.
func TestSlowRequestsCutAtReadTimeout(t *testing.T) {
	addr := engineWith(t, Options{Limits: api.Limits{ReadTimeout: 2 * time.Second}})
	stop := make(chan struct{})
	defer close(stop)
	body := trickle(t, addr, "POST /deployment-engine/config?check=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
		"\r\nContent-Length: 200000\r\n\r\n{", 300*time.Millisecond, stop)
	head := trickle(t, addr, "GET /deployment-engine/config HTTP/1.1\r\nHost: x\r\n", 300*time.Millisecond, stop)
	start := time.Now()
	for name, tr := range map[string]*trickler{"slow body": body, "slow headers": head} {
		if !closed(tr.conn, 6*time.Second) {
			t.Errorf("%s: still open after %s", name, time.Since(start).Round(time.Millisecond))
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cut after %s, want about the 2 s read timeout", d)
	}
}

func get(t *testing.T, url, tok string) int {
	t.Helper()
	code, _ := getHdr(t, url, tok)
	return code
}

func getHdr(t *testing.T, url, tok string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if tok != "" {
		req.Header.Set("Authorization", tok)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// A token with its requests in flight at the bound gets 429 with
// Retry-After; health and metrics still answer; the slots come back.
func TestTooManyRequestsInFlight(t *testing.T) {
	const perToken = 4
	addr := engineWith(t, Options{Limits: api.Limits{MaxInFlightPerToken: perToken, MaxInFlight: 100}})
	base := "http://" + addr
	stop := make(chan struct{})
	var held []*trickler
	for range perToken {
		held = append(held, trickle(t, addr, "POST /deployment-engine/config?check=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
			"\r\nContent-Length: 100000\r\n\r\n{", 200*time.Millisecond, stop))
	}
	time.Sleep(300 * time.Millisecond) // their handlers are reading the bodies

	// Many concurrent clients: every one is refused with 429 and Retry-After.
	var wg sync.WaitGroup
	codes := make(chan string, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, h := getHdr(t, base+"/deployment-engine/config", "Bearer "+token)
			codes <- fmt.Sprintf("%d retry-after=%s", code, h.Get("Retry-After"))
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != "429 retry-after=1" {
			t.Fatalf("a request beyond the bound: %s, want 429 with Retry-After", c)
		}
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if code := get(t, base+p, ""); code != 200 {
			t.Errorf("%s while the token is at its bound: %d", p, code)
		}
	}
	close(stop)
	for _, tr := range held {
		tr.conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code := get(t, base+"/deployment-engine/config", "Bearer "+token)
		if code == 404 { // no config yet: the request went through
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slots never came back: still %d", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Every answer carries the browser protections; the scheme is
// case-insensitive; errors quote at most 200 bytes of the request.
func TestHeadersSchemeAndQuotes(t *testing.T) {
	addr := engineWith(t, Options{})
	base := "http://" + addr
	for _, tt := range []struct{ path, tok string }{
		{"/", ""}, {"/healthz", ""}, {"/deployment-engine/config", ""}, {"/deployment-engine/config", "Bearer " + token}, {"/nope", ""},
	} {
		_, h := getHdr(t, base+tt.path, tt.tok)
		for k, want := range map[string]string{
			"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
		} {
			if h.Get(k) != want {
				t.Errorf("%s: %s = %q, want %q", tt.path, k, h.Get(k), want)
			}
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
			t.Errorf("%s: CSP %q", tt.path, csp)
		}
	}
	for _, scheme := range []string{"bearer", "BEARER", "Bearer"} {
		if code := get(t, base+"/deployment-engine/config", scheme+" "+token); code != 404 {
			t.Errorf("%s scheme: %d, want 404 (authenticated, no config yet)", scheme, code)
		}
	}
	if code := get(t, base+"/deployment-engine/config", "Basic "+token); code != 401 {
		t.Errorf("Basic scheme: %d, want 401", code)
	}

	// With a config stored, names reach the services that check them.
	req, _ := http.NewRequest("POST", base+"/deployment-engine/config?check=0", strings.NewReader(manual(t)))
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("store the manual's config: %v %v", err, resp)
	}
	long := strings.Repeat("A", 50_000)
	cases := []struct{ method, path, body string }{
		{"PUT", "/deployment-engine/restart", `{"name": "` + long + `", "ip": "10.10.101.181"}`},
		{"PUT", "/deployment-engine/stop", `{"name": "haproxy", "ip": "` + long + `"}`},
		{"GET", "/deployment-engine/hardware?comp=" + long + "&ip=10.10.101.181", ""},
		{"POST", "/deployment-engine/scale", `{"Comp": "` + long + `", "Ip": "10.10.101.250"}`},
		{"POST", "/deployment-engine/scale", `{"Comp": "nats", "Ip": "` + long + `"}`},
		{"GET", "/deployment-engine/" + long, ""},
		{"POST", "/deployment-engine/config?check=0", `{"` + long + `": 1}`},
		{"POST", "/deployment-engine/config?check=0", `{"components": {"` + long + `": ["10.10.101.1"]}, "properties": {"` + long + `": 1}}`},
		{"PUT", "/deployment-engine/download", long + ".log"},
		{"PUT", "/deployment-engine/restart", `{"` + long + `": "x"}`},
		{"GET", "/deployment-engine/deployments/d-" + long, ""},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s %.40s: %d, want a 4xx", c.method, c.path, resp.StatusCode)
		}
		if n := longestRun(b, 'A'); n > 200 {
			t.Errorf("%s %.40s: the error quotes %d bytes of the request at once: %.300s", c.method, c.path, n, b)
		}
	}
}

func longestRun(b []byte, c byte) int {
	best, n := 0, 0
	for _, x := range b {
		if x == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

// Nothing the engine keeps on disk holds a secret in clear: the store is
// encrypted at rest and every other file is the engine's own.
func TestNoSecretOnDisk(t *testing.T) {
	dir := t.TempDir()
	const root, pw = "root-pw-on-disk-6a5b4c", "user-pw-on-disk-1f2e3d"
	{
		addr, stop := engineStop(t, Options{DataDir: dir})
		cfg := strings.NewReplacer(`"123456"`, `"`+root+`"`, `"password":"password"`, `"password":"`+pw+`"`).Replace(manual(t))
		if !strings.Contains(cfg, pw) || !strings.Contains(cfg, root) {
			t.Fatal("the test config does not carry the secrets")
		}
		req, _ := http.NewRequest("POST", "http://"+addr+"/deployment-engine/config?check=0", strings.NewReader(cfg))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("store the config: %v %v", err, resp)
		}
		resp.Body.Close()
		stop()
	}
	var holding []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && (bytes.Contains(b, []byte(root)) || bytes.Contains(b, []byte(pw))) {
			holding = append(holding, p)
		}
		return nil
	})
	if len(holding) > 0 {
		t.Fatalf("files hold a secret in clear: %v", holding)
	}
	if _, err := os.Stat(filepath.Join(dir, EngineKeyFile)); err != nil {
		t.Fatalf("no engine key: %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, EngineKeyFile)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("engine key mode %v, want 0600", fi.Mode().Perm())
	}
}
