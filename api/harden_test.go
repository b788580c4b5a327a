package api

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestBearer(t *testing.T) {
	for _, tt := range []struct {
		h, tok string
		ok     bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"", "", false},
		{"Bearerabc", "", false},
	} {
		tok, ok := bearer(tt.h)
		if tok != tt.tok || ok != tt.ok {
			t.Errorf("bearer(%q) = %q, %v; want %q, %v", tt.h, tok, ok, tt.tok, tt.ok)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(Limits{MaxInFlight: 3, MaxInFlightPerToken: 2, MaxStreams: 1})
	a, b, c := [16]byte{1}, [16]byte{2}, [16]byte{3}
	var rel []func()
	take := func(k [16]byte, stream, want bool) {
		t.Helper()
		r, ok := l.acquire(k, stream)
		if ok != want {
			t.Fatalf("acquire(%v, stream=%v) = %v, want %v", k[0], stream, ok, want)
		}
		if ok {
			rel = append(rel, r)
		}
	}
	take(a, false, true)
	take(a, false, true)
	take(a, false, false) // a's share is full
	take(b, false, true)
	take(c, false, false) // everyone's is full
	take(a, true, true)   // streams are counted apart
	take(b, true, false)
	for _, r := range rel {
		r()
	}
	take(c, false, true)
	take(c, true, true)
	if len(l.byToken) != 1 {
		t.Errorf("released tokens are not forgotten: %v", l.byToken)
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("é", 300)
	got := contract.Clip(long)
	if len(got) > contract.ClipMax+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("Clip cut badly: %d bytes %q", len(got), got[len(got)-10:])
	}
	if contract.Clip("short") != "short" {
		t.Error("Clip changed a short string")
	}
}
