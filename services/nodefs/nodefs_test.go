package nodefs

import "testing"

func TestMarkerName(t *testing.T) {
	cases := []struct{ key, want string }{
		{"nats.install", "nats.install"},
		{"bosh.job.web-1.apply", "bosh.job.web-1.apply"},
		{"a/b c;rm -rf /", "a_b_c_rm_-rf__"},
		{"$(x)*", "__x__"},
	}
	for _, c := range cases {
		if got := MarkerName(c.key); got != c.want {
			t.Errorf("MarkerName(%q) = %q, want %q", c.key, got, c.want)
		}
	}
	if got, want := Marker("nats.install"), "/var/lib/deployment-engine/applied/nats.install"; got != want {
		t.Errorf("Marker = %q, want %q", got, want)
	}
	if got, want := ClearMarkers("bosh.job.a b."), "rm -f /var/lib/deployment-engine/applied/bosh.job.a_b.*"; got != want {
		t.Errorf("ClearMarkers = %q, want %q", got, want)
	}
}

func TestOwnedElsewhere(t *testing.T) {
	cases := []struct {
		owner string
		want  bool
	}{{"", false}, {"\n", false}, {"e-1", false}, {"e-1\n", false}, {"e-2\n", true}}
	for _, c := range cases {
		if got := OwnedElsewhere(c.owner, "e-1"); got != c.want {
			t.Errorf("OwnedElsewhere(%q) = %v, want %v", c.owner, got, c.want)
		}
	}
}
