package bus

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// The config's secrets rest sealed in the bucket: its raw value holds none
// of them, and LoadConfig gives them back.
func TestConfigSecretsSealed(t *testing.T) {
	ctx := context.Background()
	srv, err := StartServer(ctx, ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	nc, _ := srv.Connect("test")
	defer nc.Close()
	res, err := Declare(ctx, nc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := contract.Config{Components: map[string][]string{"web": {"10.0.0.1"}},
		Properties: contract.Properties{Domain: "a.b", Root: "root-secret-77", Password: "user-secret-88", Key: "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-secret-99\n"}}

	// A process without the key cannot open what another sealed.
	SetSealKey([]byte("engine-key-for-this-test-0123456789"))
	if err := StoreConfig(ctx, res.Config, cfg); err != nil {
		t.Fatal(err)
	}
	e, err := res.Config.Get(ctx, KeyConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"root-secret-77", "user-secret-88", "key-secret-99"} {
		if bytes.Contains(e.Value(), []byte(s)) {
			t.Fatalf("the bucket holds %s in clear: %s", s, e.Value())
		}
	}
	got, err := LoadConfig(ctx, res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if got.Properties.Root != cfg.Properties.Root || got.Properties.Password != cfg.Properties.Password || got.Properties.Key != cfg.Properties.Key {
		t.Fatalf("secrets did not come back: %+v", got.Properties)
	}
	keys := sealKeys.Swap(nil)
	defer sealKeys.Store(keys)
	if _, err := LoadConfig(ctx, res.Config); !errors.Is(err, ErrSealed) {
		t.Fatalf("load without the key: %v, want ErrSealed", err)
	}
}
