package engine

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --tls auto: the API answers over https with a pair made once in the data
// dir; a client that pins it gets in; over plain HTTP only what the nodes
// fetch (the mirror, health) answers and the API refuses with a hint.
func TestTLSAuto(t *testing.T) {
	dir := t.TempDir()
	addr, stop := engineStop(t, Options{DataDir: dir, TLS: TLSAuto})
	cert, err := os.ReadFile(filepath.Join(dir, AutoCertFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, AutoKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", err, fi)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cert) {
		t.Fatal("no certificate in the auto pair")
	}
	pinned := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(c *http.Client, url string, auth bool) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, h := get(pinned, "https://"+addr+"/deployment-engine/config", true); code != 404 || h.Get("Strict-Transport-Security") == "" {
		t.Fatalf("https with the pinned certificate: %d %s %v", code, body, h)
	}
	// Every name a client may use on this machine is in the certificate.
	for _, host := range []string{"localhost", "127.0.0.1"} {
		url := "https://" + strings.Replace(addr, "127.0.0.1", host, 1) + "/healthz"
		if code, body, _ := get(pinned, url, false); code != 200 {
			t.Fatalf("%s: %d %s", url, code, body)
		}
	}
	if _, err := http.Get("https://" + addr + "/healthz"); err == nil {
		t.Fatal("a client that does not pin the self-signed certificate got in")
	}
	plain := &http.Client{Timeout: 10 * time.Second}
	if code, body, _ := get(plain, "http://"+addr+"/deployment-engine/config", true); code != 400 || !strings.Contains(body, "https only") {
		t.Fatalf("the API over plain HTTP: %d %s, want 400 saying https only", code, body)
	}
	if code, _, _ := get(plain, "http://"+addr+"/healthz", false); code != 200 {
		t.Fatalf("health over plain HTTP: %d", code)
	}
	if code, _, _ := get(plain, "http://"+addr+"/mirror/Packages.gz", false); code != 404 {
		t.Fatalf("the mirror over plain HTTP: %d, want 404 (empty mirror), not a refusal", code)
	}
	stop()

	// The pair is made once: a restart keeps it.
	engineWith(t, Options{DataDir: dir, TLS: TLSAuto})
	again, _ := os.ReadFile(filepath.Join(dir, AutoCertFile))
	if !bytes.Equal(cert, again) {
		t.Fatal("a restart made a new certificate")
	}
}

func TestTLSFlags(t *testing.T) {
	for _, o := range []Options{
		{TLS: "yes"},
		{TLSCert: "/nope.pem"},
		{TLS: TLSAuto, TLSCert: "/a.pem", TLSKey: "/b.pem"},
		{TLSCert: "/nope.pem", TLSKey: "/nope.key"},
	} {
		o.DataDir = t.TempDir()
		if _, err := loadTLS(o); err == nil {
			t.Errorf("loadTLS(%+v) accepted", o)
		}
	}
}

// A private key that group or others may read is refused at start, naming
// the file and the fix.
func TestTLSKeyMode(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := ensureSelfSigned(cert, key, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	o := Options{DataDir: dir, TLSCert: cert, TLSKey: key}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		_, err := loadTLS(o)
		if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := loadTLS(o); err != nil {
			t.Errorf("mode %04o refused: %v", mode, err)
		}
	}
}

// An engine key file named by DE_ENGINE_KEY_FILE that others may read is
// refused, naming the file and the fix; one that is its owner's alone loads.
func TestEngineKeyFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine-key")
	if err := os.WriteFile(path, []byte("0123456789abcdef0123456789abcdef\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DE_ENGINE_KEY_FILE", path)
	if _, err := loadEngineKey(t.TempDir()); err == nil || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Fatalf("a key file others may read: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadEngineKey(t.TempDir()); err != nil {
		t.Fatalf("a key file of its owner's: %v", err)
	}
}
