package bus

import (
	"bytes"
	"context"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
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

// A step's files, and its chain's, travel and rest sealed with the
// engine's key and open to the same bytes; a process without the key
// leaves them as they are, and one with another key cannot open them.
func TestStepFilesSealed(t *testing.T) {
	keys := sealKeys.Swap(nil)
	defer sealKeys.Store(keys)
	step := contract.Step{ID: "n/vault/apply", Files: []contract.StepFile{{Path: "/var/vcap/jobs/vault/config/vault.conf", Content: []byte("password=job-secret-33\n")}, {Path: "/empty"}},
		Chain: []contract.Step{{ID: "n/vault/start", Files: []contract.StepFile{{Path: "/x", Content: []byte("token=job-secret-22")}}}}}
	if got := SealStep(step); got.Files[0].Sealed || string(got.Files[0].Content) != "password=job-secret-33\n" {
		t.Fatalf("sealed without a key: %+v", got.Files[0])
	}
	SetSealKey([]byte("engine-key-for-the-step-test-0123"))
	sealed := SealStep(step)
	b, _ := json.Marshal(sealed)
	for _, s := range []string{"job-secret-33", "job-secret-22"} {
		if bytes.Contains(b, []byte(s)) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString([]byte("password=job-secret-33\n")))) {
			t.Fatalf("the sealed step holds %s: %s", s, b)
		}
	}
	if string(step.Files[0].Content) != "password=job-secret-33\n" || step.Files[0].Sealed {
		t.Fatal("SealStep changed the step it was given")
	}
	var back contract.Step
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := OpenStep(&back); err != nil {
		t.Fatal(err)
	}
	// A step with a sealed file says so in its version, for an installer
	// that could not open it to refuse it.
	if back.V != contract.StepVersionSealed || back.Chain[0].V != contract.StepVersionSealed {
		t.Errorf("sealed step's versions %d, %d, want %d", back.V, back.Chain[0].V, contract.StepVersionSealed)
	}
	back.V, back.Chain[0].V = 0, 0
	if !reflect.DeepEqual(back, step) {
		t.Fatalf("opened step:\n%+v\nwant\n%+v", back, step)
	}
	// Sealed content moved to another file does not open.
	moved := contract.Step{}
	_ = json.Unmarshal(b, &moved)
	moved.Files[0].Path = "/etc/other"
	if err := OpenStep(&moved); !errors.Is(err, ErrStepSealed) {
		t.Errorf("a sealed file moved to another path: %v, want ErrStepSealed", err)
	}
	other := contract.Step{}
	_ = json.Unmarshal(b, &other)
	sealKeys.Store(&[]cipher.AEAD{})
	SetSealKey([]byte("another-engine-key-0123456789abcd"))
	if err := OpenStep(&other); err == nil {
		t.Fatal("another engine's key opened the step")
	}
}
