package validate

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestKey(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	good := string(pem.EncodeToMemory(block))
	locked, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("pw"))
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "id")
	secretFile := filepath.Join(dir, "shadow")
	const secret = "root:$6$Zm9vYmFy$verysecrethash:19000:0:99999:7:::"
	for name, b := range map[string]string{keyFile: good, secretFile: secret} {
		if err := os.WriteFile(name, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, key, want string
	}{
		{"PEM text", good, ""},
		{"a key file", keyFile, ""},
		{"empty", "", ""},
		{"a file that is no key", secretFile, "is not an SSH private key"},
		{"/etc/shadow", "/etc/shadow", "is not an SSH private key"},
		{"a directory", dir, "is not a regular file"},
		{"a device", "/dev/zero", "is not a regular file"},
		{"no such file", filepath.Join(dir, "nope"), "does not exist"},
		{"a relative path", "id_rsa", "absolute path"},
		{"broken PEM", "-----BEGIN OPENSSH PRIVATE KEY-----\n" + secret + "\n-----END OPENSSH PRIVATE KEY-----\n", "is not an SSH private key"},
		{"a passphrase", string(pem.EncodeToMemory(locked)), "passphrase"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := Key(tt.key)
			if tt.want == "" {
				if p != nil {
					t.Fatalf("Key refused a good key: %+v", p)
				}
				return
			}
			if p == nil || !strings.Contains(p.Reason, tt.want) || p.Path != "properties.key" {
				t.Fatalf("Key(%.30q) = %+v, want a problem saying %q", tt.key, p, tt.want)
			}
			if strings.Contains(p.Reason, "verysecrethash") || strings.Contains(p.Reason, "root:") {
				t.Fatalf("the problem quotes the file: %s", p.Reason)
			}
		})
	}
}
