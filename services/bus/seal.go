package bus

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
)

// sealedPrefix starts a secret sealed in the config bucket.
const sealedPrefix = "de-sealed:v1:"

// sealKeys are the keys this process knows, the last one sealing: one
// engine per process has one; tests that run several engines in one
// process open what each sealed.
var sealKeys atomic.Pointer[[]cipher.AEAD]

// SetSealKey makes this process seal the config's secrets when it stores
// the config and open them when it loads it (AES-256-GCM, with a key
// derived from key). Every process of one engine needs the same key.
func SetSealKey(key []byte) {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("deployment-engine/config-seal"))
	block, _ := aes.NewCipher(m.Sum(nil)) // 32 bytes: AES-256 never fails
	aead, _ := cipher.NewGCM(block)
	for {
		old := sealKeys.Load()
		var next []cipher.AEAD
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, aead)
		if sealKeys.CompareAndSwap(old, &next) {
			return
		}
	}
}

// ErrSealed marks a stored config whose secrets this process cannot open.
var ErrSealed = errors.New("the stored config's secrets are sealed with the engine's key, which this process does not have (give it the engine-key file or DE_ENGINE_KEY_FILE)")

func seal(aead cipher.AEAD, s string) string {
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(aead.Seal(nonce, nonce, []byte(s), []byte(contract.Redacted)))
}

func open(aead cipher.AEAD, s string) (string, error) {
	b, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(s, sealedPrefix))
	if err != nil || len(b) < aead.NonceSize() {
		return "", fmt.Errorf("%w: a sealed secret is damaged", ErrBadConfig)
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(contract.Redacted))
	if err != nil {
		return "", fmt.Errorf("%w: a sealed secret does not open with this engine's key", ErrBadConfig)
	}
	return string(pt), nil
}

// EncodeConfig is cfg as the config bucket keeps it: every secret
// (contract.Config.MapSecrets) sealed when this process has the engine's key.
func EncodeConfig(cfg contract.Config) ([]byte, error) {
	out := cfg
	if keys := sealKeys.Load(); keys != nil {
		aead := (*keys)[len(*keys)-1]
		out, _ = cfg.MapSecrets(func(s string) (string, error) { return seal(aead, s), nil })
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return b, nil
}

// StoreConfig keeps cfg in its bucket, its secrets sealed.
func StoreConfig(ctx context.Context, kv jetstream.KeyValue, cfg contract.Config) error {
	b, err := EncodeConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, KeyConfig, b); err != nil {
		return fmt.Errorf("store config: %w", err)
	}
	return nil
}

// openSecrets opens every sealed secret of cfg in place.
func openSecrets(cfg *contract.Config) error {
	opened, err := cfg.MapSecrets(func(s string) (string, error) {
		if !strings.HasPrefix(s, sealedPrefix) {
			return s, nil
		}
		keys := sealKeys.Load()
		if keys == nil {
			return "", ErrSealed
		}
		var v string
		var err error
		for i := len(*keys) - 1; i >= 0; i-- {
			if v, err = open((*keys)[i], s); err == nil {
				break
			}
		}
		return v, err
	})
	if err != nil {
		return err
	}
	*cfg = opened
	return nil
}

// stepFileAAD binds a sealed file to its step and path: sealed content
// moved to another step or file does not open.
func stepFileAAD(stepID, path string) []byte {
	return []byte("deployment-engine/step-file\x00" + stepID + "\x00" + path)
}

// ErrStepSealed is a step whose files do not open here.
var ErrStepSealed = errors.New("the step's files are sealed with the engine's key, which this process does not have or which is not the one they were sealed with (give every process of the engine the same engine-key file or DE_ENGINE_KEY_FILE)")

// SealStep returns s with the inline content of its files, and of the
// steps chained after it, sealed with the engine's key (StepFile.Sealed):
// a rendered file may hold a job's secrets, and steps rest in the bus
// (the scheduler's bucket, the work queue) that a backup copies. A step
// with a sealed file carries contract.StepVersionSealed, so that an
// installer that cannot open it refuses it rather than write ciphertext
// to the node. Without the key (a process given none) it returns s as it
// is. s is not changed.
func SealStep(s contract.Step) contract.Step {
	keys := sealKeys.Load()
	if keys == nil {
		return s
	}
	aead := (*keys)[len(*keys)-1]
	s.Files = slices.Clone(s.Files)
	for i, f := range s.Files {
		if f.Sealed || len(f.Content) == 0 {
			continue
		}
		nonce := make([]byte, aead.NonceSize())
		_, _ = rand.Read(nonce)
		s.Files[i].Content, s.Files[i].Sealed = aead.Seal(nonce, nonce, f.Content, stepFileAAD(s.ID, f.Path)), true
		s.V = max(s.V, contract.StepVersionSealed)
	}
	if len(s.Chain) > 0 {
		s.Chain = slices.Clone(s.Chain)
		for i := range s.Chain {
			s.Chain[i] = SealStep(s.Chain[i])
		}
	}
	return s
}

// OpenStep opens in place what SealStep sealed in s and its chain.
func OpenStep(s *contract.Step) error {
	for i := range s.Files {
		f := &s.Files[i]
		if !f.Sealed {
			continue
		}
		keys := sealKeys.Load()
		if keys == nil {
			return fmt.Errorf("step %s: file %s: %w", s.ID, f.Path, ErrStepSealed)
		}
		var err error
		for k := len(*keys) - 1; k >= 0; k-- {
			aead := (*keys)[k]
			var pt []byte
			if len(f.Content) < aead.NonceSize() {
				err = errors.New("too short")
				break
			}
			if pt, err = aead.Open(nil, f.Content[:aead.NonceSize()], f.Content[aead.NonceSize():], stepFileAAD(s.ID, f.Path)); err == nil {
				f.Content, f.Sealed = pt, false
				break
			}
		}
		if err != nil {
			return fmt.Errorf("step %s: file %s does not open (damaged, moved, or sealed by another engine): %w", s.ID, f.Path, ErrStepSealed)
		}
	}
	for i := range s.Chain {
		if err := OpenStep(&s.Chain[i]); err != nil {
			return err
		}
	}
	return nil
}
