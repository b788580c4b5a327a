package engine

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// EngineKeyFile holds the engine's key in the data dir (mode 0600), unless
// DE_ENGINE_KEY_FILE names another file. The store's encryption key and
// the key of the digests of secrets in step hashes derive from it.
const EngineKeyFile = "engine-key"

// engineKey is the engine's own secret; every other key derives from it.
type engineKey []byte

func loadEngineKey(dataDir string) (engineKey, error) {
	if path := strings.TrimSpace(os.Getenv("DE_ENGINE_KEY_FILE")); path != "" {
		// Every key of the engine derives from it, and templates render as
		// an unprivileged user that may read what others may.
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("DE_ENGINE_KEY_FILE: %w", err)
		}
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("DE_ENGINE_KEY_FILE %s is open to group or others (mode %04o): the engine's key must be its owner's alone; run chmod 600 %s", path, perm, path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("DE_ENGINE_KEY_FILE: %w", err)
		}
		k := strings.TrimSpace(string(b))
		if len(k) < 32 {
			return nil, fmt.Errorf("DE_ENGINE_KEY_FILE %s: want at least 32 characters of key", path)
		}
		return engineKey(k), nil
	}
	k, err := secretFile(filepath.Join(dataDir, EngineKeyFile))
	if err != nil {
		return nil, err
	}
	return engineKey(k), nil
}

// derive is a key for one use, so that no two uses share a key.
func (k engineKey) derive(use string) []byte {
	m := hmac.New(sha256.New, k)
	m.Write([]byte("deployment-engine/" + use))
	return m.Sum(nil)
}

func (k engineKey) digestKey() []byte { return k.derive("step-secret-digest") }

// storeKey encrypts the JetStream store at rest.
func (k engineKey) storeKey() string { return hex.EncodeToString(k.derive("jetstream-store")) }
