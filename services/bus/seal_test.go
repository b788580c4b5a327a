package bus

import (
	"bytes"
	"context"
	"errors"
	"reflect"
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
		Properties: contract.Properties{Domain: "a.b", Root: "root-secret-77", Password: "user-secret-88", Key: "-----BEGIN OPENSSH PRIVATE KEY-----\nkey-secret-99\n",
			Notify: &contract.NotifyConfig{Webhooks: []contract.Webhook{{URL: "https://hooks.example/x", Secret: "hook-secret-66"}}},
			Jobs:   map[string]any{"vault": map[string]any{"admin_password": "job-secret-55", "tls": map[string]any{"private_key": "job-secret-44"}, "port": 8200.0, "greeting": "hello"}}}}

	// A process without the key cannot open what another sealed.
	SetSealKey([]byte("engine-key-for-this-test-0123456789"))
	if err := StoreConfig(ctx, res.Config, cfg); err != nil {
		t.Fatal(err)
	}
	e, err := res.Config.Get(ctx, KeyConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"root-secret-77", "user-secret-88", "key-secret-99", "hook-secret-66", "job-secret-55", "job-secret-44"} {
		if bytes.Contains(e.Value(), []byte(s)) {
			t.Fatalf("the bucket holds %s in clear: %s", s, e.Value())
		}
	}
	got, err := LoadConfig(ctx, res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Fatalf("the config did not come back as stored:\n%+v\nwant\n%+v", got.Properties, cfg.Properties)
	}
	if !bytes.Contains(e.Value(), []byte(`"greeting":"hello"`)) {
		t.Errorf("a property that is no secret is sealed too: %s", e.Value())
	}
	keys := sealKeys.Swap(nil)
	defer sealKeys.Store(keys)
	if _, err := LoadConfig(ctx, res.Config); !errors.Is(err, ErrSealed) {
		t.Fatalf("load without the key: %v, want ErrSealed", err)
	}
}
