package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// The nodes fetch the agent's binary with no token, at the path of its
// SHA-256 only: another digest, another name, the directories above it
// and any change are refused, and nothing is listed.
func TestAgentBinaryServed(t *testing.T) {
	bin := bytes.Repeat([]byte("\x7fELF agent "), 50000)
	sum := sha256.Sum256(bin)
	sha := hex.EncodeToString(sum[:])
	other := sha256.Sum256([]byte("another build"))
	o := Options{Token: "admin-token-0123456789", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Agent: &AgentBinary{SHA256: sha, Content: bytes.NewReader(bin), Size: int64(len(bin)), ModTime: time.Unix(1700000000, 0)}}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()

	resp, body := do(t, "GET", ts.URL+"/agent/"+sha+"/de-agent", "")
	if resp.StatusCode != 200 || !bytes.Equal(body, bin) {
		t.Fatalf("GET the agent: %d, %d bytes (want 200, %d bytes)", resp.StatusCode, len(body), len(bin))
	}
	if got := sha256.Sum256(body); hex.EncodeToString(got[:]) != sha {
		t.Fatal("the agent served does not have its SHA-256")
	}
	resp, body = do(t, "HEAD", ts.URL+"/agent/"+sha+"/de-agent", "")
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(bin)) {
		t.Fatalf("HEAD the agent: %d, %d bytes, length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}

	cases := []struct {
		method, path string
		want         int
	}{
		{"GET", "/agent/" + hex.EncodeToString(other[:]) + "/de-agent", 404},
		{"GET", "/agent/" + sha + "/deployment-engine", 404},
		{"GET", "/agent/" + sha + "/", 404},
		{"GET", "/agent/" + sha, 404},
		{"GET", "/agent/", 404},
		{"GET", "/agent/" + sha + "/../" + sha + "/de-agent", 404},
		{"GET", "/agent/" + sha + "/de-agent/", 404},
		{"PUT", "/agent/" + sha + "/de-agent", 405},
		{"POST", "/agent/" + sha + "/de-agent", 405},
		{"DELETE", "/agent/" + sha + "/de-agent", 405},
	}
	for _, c := range cases {
		resp, body := do(t, c.method, ts.URL+c.path, "evil")
		if resp.StatusCode != c.want || bytes.Contains(body, []byte("ELF")) {
			t.Errorf("%s %s: %d %.80q, want %d", c.method, c.path, resp.StatusCode, body, c.want)
		}
	}
	// Still there, unchanged, after every refused change.
	if _, body := do(t, "GET", ts.URL+"/agent/"+sha+"/de-agent", ""); !bytes.Equal(body, bin) {
		t.Fatal("the agent changed")
	}
}

// An engine without the agent's binary serves none.
func TestNoAgentBinary(t *testing.T) {
	o := Options{Token: "admin-token-0123456789", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	if resp, _ := do(t, "GET", ts.URL+"/agent/"+hex.EncodeToString(make([]byte, 32))+"/de-agent", ""); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an engine with no agent binary answers %d", resp.StatusCode)
	}
}
