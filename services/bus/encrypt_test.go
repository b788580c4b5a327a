package bus

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/subject"
)

const knownSecret = "root-password-9f8e7d6c5b4a"

// filesHolding lists the store's files that hold s in clear.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// run starts a server on dir with key, runs f with the declared
// resources, and stops it.
func run(t *testing.T, dir, key string, f func(*Resources)) error {
	t.Helper()
	ctx := context.Background()
	srv, err := StartServer(ctx, ServerOptions{DataDir: dir, EncryptionKey: key})
	if err != nil {
		return err
	}
	defer srv.Stop()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	res, err := Declare(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	f(res)
	return nil
}

func storeSecret(t *testing.T) func(*Resources) {
	return func(res *Resources) {
		ctx := context.Background()
		if _, err := res.Config.Put(ctx, KeyConfig, []byte(`{"properties":{"root":"`+knownSecret+`"}}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := res.JS.Publish(ctx, subject.EngineEvent("test"), []byte(`{"message":"`+knownSecret+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
}

func readSecret(t *testing.T) func(*Resources) {
	return func(res *Resources) {
		e, err := res.Config.Get(context.Background(), KeyConfig)
		if err != nil || !strings.Contains(string(e.Value()), knownSecret) {
			t.Fatalf("the config did not survive: %v", err)
		}
	}
}

// The store's files on disk never hold a secret in clear; it opens with
// its key only, and a failed open changes nothing.
func TestStoreEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	const key = "0123456789abcdef0123456789abcdef"
	if err := run(t, dir, key, storeSecret(t)); err != nil {
		t.Fatal(err)
	}
	if files := filesHolding(t, dir, knownSecret); len(files) > 0 {
		t.Fatalf("the secret is in clear in %v", files)
	}
	if err := run(t, dir, key, readSecret(t)); err != nil {
		t.Fatal(err)
	}
	err := run(t, dir, "", func(*Resources) { t.Fatal("an encrypted store opened without its key") })
	if err == nil || !strings.Contains(err.Error(), "encrypted and no key") {
		t.Fatalf("open without the key: %v", err)
	}
	err = run(t, dir, "another-key-another-key-another-k", func(*Resources) { t.Fatal("an encrypted store opened with another key") })
	if err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("open with another key: %v", err)
	}
	if err := run(t, dir, key, readSecret(t)); err != nil {
		t.Fatalf("after the failed opens: %v", err)
	}
}

// A store made before encryption still opens when a key is given, and
// stays plaintext (nats-server's conversion in place did not reopen).
func TestPlaintextStoreStillOpens(t *testing.T) {
	dir := t.TempDir()
	if err := run(t, dir, "", storeSecret(t)); err != nil {
		t.Fatal(err)
	}
	if len(filesHolding(t, dir, knownSecret)) == 0 {
		t.Fatal("a plaintext store does not show the secret: this test cannot see one")
	}
	const key = "0123456789abcdef0123456789abcdef"
	for range 2 {
		if err := run(t, dir, key, readSecret(t)); err != nil {
			t.Fatal(err)
		}
	}
}
