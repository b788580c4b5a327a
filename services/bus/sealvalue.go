package bus

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

// SealValue seals a secret the engine keeps in its store outside the
// config (a manifest's generated variables) as the config's secrets are
// sealed, bound to what names it: sealed text moved to another name does
// not open. Without the engine's key it is s as it is, as a config's
// secrets are then.
func SealValue(what, s string) string {
	keys := sealKeys.Load()
	if keys == nil {
		return s
	}
	aead := (*keys)[len(*keys)-1]
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(s), valueAAD(what)))
}

// OpenValue opens what SealValue sealed under the same name; a value
// that was stored without a key is returned as it is.
func OpenValue(what, s string) (string, error) {
	if !strings.HasPrefix(s, sealedPrefix) {
		return s, nil
	}
	keys := sealKeys.Load()
	if keys == nil {
		return "", fmt.Errorf("%s: %w", what, ErrSealed)
	}
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(s, sealedPrefix))
	if err != nil {
		return "", fmt.Errorf("%s: a sealed value is damaged", what)
	}
	for i := len(*keys) - 1; i >= 0; i-- {
		aead := (*keys)[i]
		if len(b) < aead.NonceSize() {
			break
		}
		if pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], valueAAD(what)); err == nil {
			return string(pt), nil
		}
	}
	return "", fmt.Errorf("%s: the sealed value does not open with this engine's key (damaged, moved, or sealed by another engine)", what)
}

func valueAAD(what string) []byte { return []byte("deployment-engine/value\x00" + what) }
