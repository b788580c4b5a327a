package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// fakeLogs stands in for the log service in these tests only: the same
// two endpoints over files held in memory, with the same name rule, the
// same 512 KiB cap and the same codes.
func fakeLogs(t *testing.T, files map[string][]byte) *httptest.Server {
	t.Helper()
	nc := bustest.Start(t, bus.ServerOptions{}).NC
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := micro.AddService(nc, micro.Config{Name: "logsvc", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	nameRe := regexp.MustCompile(`^[a-z][a-z0-9_-]{0,80}\.log(\.[1-9][0-9]?)?$`)
	handlers := map[string]kit.Handler{
		subject.LogsList(): func(context.Context, micro.Request) (int, any, error) {
			names := []string{"local.log"}
			for n := range files {
				if n != "local.log" {
					names = append(names, n)
				}
			}
			sort.Strings(names[1:])
			return 200, names, nil
		},
		subject.LogsRead(): func(_ context.Context, req micro.Request) (int, any, error) {
			var r contract.LogRead
			if err := kit.Decode(req, &r); err != nil {
				return 0, nil, err
			}
			if !nameRe.MatchString(r.Name) || r.Offset < 0 {
				return 0, nil, kit.Errorf(400, "bad log name %q", r.Name)
			}
			b, ok := files[r.Name]
			if !ok {
				return 0, nil, kit.Errorf(404, "no log %q", r.Name)
			}
			n := r.Length
			if n <= 0 || n > contract.LogReadMax {
				n = contract.LogReadMax
			}
			off := min(r.Offset, int64(len(b)))
			end := min(off+n, int64(len(b)))
			return 200, contract.LogChunk{Name: r.Name, Size: int64(len(b)), Offset: r.Offset, Data: b[off:end]}, nil
		},
	}
	for subj, h := range handlers {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(quiet, h), micro.WithEndpointSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(Options{NC: nc, AuthNone: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	t.Cleanup(func() { ts.Close(); _ = svc.Stop() })
	return ts
}

func logFiles() map[string][]byte {
	var big bytes.Buffer
	for i := 0; big.Len() < 1300<<10; i++ {
		fmt.Fprintf(&big, "2026-11-25T12:00:00Z [d-1 10.0.0.2/web/install stdout] line %d\n", i)
	}
	return map[string][]byte{
		"local.log":   []byte("2026-11-25T12:00:00Z deployment d-1 started\n"),
		"web_0.log":   big.Bytes(),
		"web_0.log.1": []byte("older\n"),
		"empty.log":   {},
	}
}

func do(t *testing.T, method, url, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestLogList(t *testing.T) {
	ts := fakeLogs(t, logFiles())
	resp, b := do(t, "GET", ts.URL+"/deployment-engine/download", "")
	var names []string
	if resp.StatusCode != 200 || json.Unmarshal(b, &names) != nil {
		t.Fatalf("GET /download: %d %s", resp.StatusCode, b)
	}
	if got := strings.Join(names, " "); got != "local.log empty.log web_0.log web_0.log.1" {
		t.Errorf("GET /download: %s", got)
	}
}

func TestLogDownload(t *testing.T) {
	files := logFiles()
	ts := fakeLogs(t, files)
	u := ts.URL + "/deployment-engine/download"
	for _, c := range []struct {
		body, name string
	}{
		{"local.log", "local.log"},
		{"  local.log\n", "local.log"},
		{`"local.log"`, "local.log"},
		{`'local.log'`, "local.log"},
		{`{ "local.log" }`, "local.log"},
		{`{local.log}`, "local.log"},
		{`{"name": "local.log"}`, "local.log"},
		{`{"Name":"web_0.log"}`, "web_0.log"},
		{"web_0.log", "web_0.log"}, // over two chunks of 512 KiB
		{"web_0.log.1", "web_0.log.1"},
		{"empty.log", "empty.log"},
	} {
		resp, b := do(t, "PUT", u, c.body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("PUT %q: %d %s %.100s", c.body, resp.StatusCode, resp.Header.Get("Content-Type"), b)
			continue
		}
		if !bytes.Equal(b, files[c.name]) {
			t.Errorf("PUT %q: %d bytes, want %d of %s", c.body, len(b), len(files[c.name]), c.name)
		}
	}
	for body, code := range map[string]int{
		"nope.log": 404, `"nope.log"`: 404, `{ "nope.log" }`: 404,
		"../etc/passwd": 400, "/etc/passwd": 400, "..%2f..%2fetc%2fpasswd": 400, "local.log\x00": 400,
		`{"name": "../local.log"}`: 400, "": 400, `{}`: 400, `""`: 400,
	} {
		resp, b := do(t, "PUT", u, body)
		var e struct{ Error string }
		if resp.StatusCode != code || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("PUT %q: %d %s, want %d with a JSON error", body, resp.StatusCode, b, code)
		}
	}
}

func TestLogServe(t *testing.T) {
	files := logFiles()
	ts := fakeLogs(t, files)
	u := ts.URL + "/deployment-engine/logs/"
	big := files["web_0.log"]

	resp, b := do(t, "GET", u+"web_0.log", "")
	if resp.StatusCode != 200 || !bytes.Equal(b, big) {
		t.Fatalf("GET web_0.log: %d, %d bytes, want %d", resp.StatusCode, len(b), len(big))
	}
	n := int64(len(big))
	for _, c := range []struct {
		rng        string
		code       int
		start, end int64 // want big[start:end]
	}{
		{"bytes=100-199", 206, 100, 200},
		{"bytes=524000-525000", 206, 524000, 525001}, // across a chunk boundary
		{"bytes=-10", 206, n - 10, n},
		{fmt.Sprintf("bytes=%d-", n-5), 206, n - 5, n},
		{"bytes=0-", 206, 0, n},
	} {
		resp, b := do(t, "GET", u+"web_0.log", "", "Range", c.rng)
		if resp.StatusCode != c.code || !bytes.Equal(b, big[c.start:c.end]) {
			t.Errorf("Range %s: %d, %d bytes, want %d and big[%d:%d]", c.rng, resp.StatusCode, len(b), c.code, c.start, c.end)
		}
	}
	if resp, _ := do(t, "GET", u+"web_0.log", "", "Range", fmt.Sprintf("bytes=%d-", n+10)); resp.StatusCode != 416 {
		t.Errorf("Range past the end: %d, want 416", resp.StatusCode)
	}
	if resp, b := do(t, "GET", u+"local.log", ""); resp.StatusCode != 200 || !bytes.Equal(b, files["local.log"]) {
		t.Errorf("GET local.log: %d %q", resp.StatusCode, b)
	}
	for path, code := range map[string]int{
		"nope.log": 404, "..%2f..%2fetc%2fpasswd": 400, "%252e%252e%252fetc": 400, "LOCAL.LOG": 400, "local.log%00": 400,
	} {
		if resp, b := do(t, "GET", u+path, ""); resp.StatusCode != code {
			t.Errorf("GET /logs/%s: %d %s, want %d", path, resp.StatusCode, b, code)
		}
	}
}

func TestLogBundle(t *testing.T) {
	files := logFiles()
	ts := fakeLogs(t, files)
	resp, b := do(t, "GET", ts.URL+"/deployment-engine/logs.tar.gz", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("GET /logs.tar.gz: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	got := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = data
	}
	if len(got) != len(files) {
		t.Errorf("bundle has %d logs, want %d", len(got), len(files))
	}
	for name, want := range files {
		if !bytes.Equal(got[name], want) {
			t.Errorf("bundle's %s: %d bytes, want %d", name, len(got[name]), len(want))
		}
	}
}

func TestLogsWithoutService(t *testing.T) {
	srv, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { nc.Close(); srv.Stop() }()
	h, err := New(Options{NC: nc, AuthNone: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	defer ts.Close()
	for _, c := range [][2]string{{"GET", "/download"}, {"PUT", "/download"}, {"GET", "/logs/local.log"}, {"GET", "/logs.tar.gz"}} {
		if resp, b := do(t, c[0], ts.URL+"/deployment-engine"+c[1], "local.log"); resp.StatusCode != 503 {
			t.Errorf("%s %s without a log service: %d %s, want 503", c[0], c[1], resp.StatusCode, b)
		}
	}
}
