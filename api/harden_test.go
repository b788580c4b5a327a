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
	l := newLimiter(Limits{MaxInFlight: 3, MaxInFlightPerToken: 2, MaxStreams: 1, MaxAnonymous: 2, MaxAnonymousPerAddr: 1})
	var rel []func()
	take := func(p *pool, k string, stream, want bool) {
		t.Helper()
		r, ok := l.acquire(p, k, stream)
		if ok != want {
			t.Fatalf("acquire(%s, stream=%v) = %v, want %v", k, stream, ok, want)
		}
		if ok {
			rel = append(rel, r)
		}
	}
	api, anon := &l.api, &l.anon
	take(api, "a", false, true)
	take(api, "a", false, true)
	take(api, "a", false, false) // a's share is full
	take(api, "b", false, true)
	take(api, "c", false, false) // everyone's is full
	take(api, "a", true, true)   // streams are counted apart
	take(api, "b", true, false)
	take(anon, "a", false, true) // the anonymous pool is another budget
	take(anon, "a", false, false)
	take(anon, "x", false, true)
	take(anon, "y", false, false)
	for _, r := range rel {
		r()
	}
	take(api, "c", false, true)
	take(api, "c", true, true)
	if len(l.api.byClient) != 1 || len(l.anon.byClient) != 0 {
		t.Errorf("released clients are not forgotten: %v %v", l.api.byClient, l.anon.byClient)
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
