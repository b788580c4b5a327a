package bus

import (
	"strings"
	"testing"
)

// A sealed value holds nothing of the secret, opens under its own name
// only, and a value stored without a key opens as it is.
func TestSealValue(t *testing.T) {
	if got, err := OpenValue("a", "plain"); err != nil || got != "plain" {
		t.Fatalf("plain value: %q %v", got, err)
	}
	SetSealKey([]byte("test key for sealed values"))
	sealed := SealValue("manifest/x", "s3cret-value")
	if strings.Contains(sealed, "s3cret") || !strings.HasPrefix(sealed, sealedPrefix) {
		t.Fatalf("sealed: %q", sealed)
	}
	if got, err := OpenValue("manifest/x", sealed); err != nil || got != "s3cret-value" {
		t.Fatalf("open: %q %v", got, err)
	}
	if _, err := OpenValue("manifest/y", sealed); err == nil {
		t.Fatal("a value moved to another name opened")
	}
	if _, err := OpenValue("manifest/x", sealedPrefix+"!!"); err == nil {
		t.Fatal("a damaged value opened")
	}
}
