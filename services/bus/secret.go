package bus

import (
	"crypto/rand"
	"encoding/hex"
)

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RandomSecret returns a fresh random secret for users and tokens.
func RandomSecret() string { return randomSecret() }
