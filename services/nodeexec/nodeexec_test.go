package nodeexec

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestSealOpen(t *testing.T) {
	key := Key("password-of-a", "10.0.0.1")
	body := []byte(`{"cmd":"true"}`)
	msg := Seal(key, body)
	got, err := Open(key, msg)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("Open(Seal) = %q, %v; want the body back", got, err)
	}
	tampered := bytes.Clone(msg)
	tampered[len(tampered)-2] ^= 1
	tests := []struct {
		name string
		key  []byte
		msg  []byte
	}{
		{"unsigned", key, body},
		{"empty", key, nil},
		{"tampered body", key, tampered},
		{"signed with another node's key", key, Seal(Key("password-of-b", "10.0.0.2"), body)},
		{"same password, another node", key, Seal(Key("password-of-a", "10.0.0.2"), body)},
		{"no key", nil, msg},
		{"bad hex", key, append([]byte("zz"), msg[2:]...)},
	}
	for _, tt := range tests {
		if _, err := Open(tt.key, tt.msg); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: Open = %v, want ErrSignature", tt.name, err)
		}
	}
}

func TestGuard(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var g Guard
	const n1, n2, n3 = "nonce-0000000001", "nonce-0000000002", "nonce-0000000003"
	if err := g.Check(n1, now, now); err != nil {
		t.Fatalf("a fresh request: %v", err)
	}
	if err := g.Check(n1, now, now.Add(time.Second)); err == nil {
		t.Error("a replayed nonce was admitted")
	}
	if err := g.Check(n2, now.Add(-MaxSkew-time.Second), now); err == nil {
		t.Error("a stale request was admitted")
	}
	if err := g.Check(n2, now.Add(MaxSkew+time.Second), now); err == nil {
		t.Error("a request from the future was admitted")
	}
	if err := g.Check("short", now, now); err == nil {
		t.Error("a short nonce was admitted")
	}
	if err := g.Check(n2, now, now); err != nil {
		t.Errorf("a refused stale request's nonce stays usable: %v", err)
	}
	// Nonces are forgotten once their requests are stale anyway.
	later := now.Add(3 * MaxSkew)
	if err := g.Check(n3, later, later); err != nil {
		t.Fatal(err)
	}
	if _, ok := g.seen[n1]; ok {
		t.Error("an old nonce was not forgotten")
	}
}
