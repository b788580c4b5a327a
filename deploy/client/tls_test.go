package client

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// With an https DE_SERVER the client pins the engine's certificate: the
// one DE_CA_FILE names, or the auto pair of the data dir.
func TestFromEnvPinsTheCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	data := t.TempDir()
	t.Setenv("DE_API_TOKEN", "tok")
	t.Setenv("DE_SERVER", srv.URL)
	t.Setenv("DE_CA_FILE", "")

	get := func() error {
		c, err := FromEnv(data)
		if err != nil {
			return err
		}
		resp, err := c.do(context.Background(), "GET", "/deployment-engine/deployments", nil)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err == nil {
		t.Fatal("a client that pins nothing trusted a self-signed engine")
	}
	if err := os.MkdirAll(filepath.Join(data, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "tls", "cert.pem"), certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := get(); err != nil {
		t.Fatalf("with the data dir's certificate: %v", err)
	}
	other := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(other, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DE_CA_FILE", other)
	if err := get(); err != nil {
		t.Fatalf("with DE_CA_FILE: %v", err)
	}
}
