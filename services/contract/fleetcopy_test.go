package contract

import (
	"encoding/json"
	"strings"
	"testing"
)

// from makes x a copy from the nodes' file at p.
func from(x *FleetCopy, p string) { x.To, x.Content, x.From = "", nil, p }

// Every field of a FleetCopy a client gets wrong is named: the path on the
// nodes above all, which must be plain, absolute and not the engine's own.
func TestFleetCopyProblems(t *testing.T) {
	ok := FleetCopy{Component: "web", To: "/etc/motd", Content: []byte("hello\n")}
	for _, c := range []struct {
		name string
		edit func(*FleetCopy)
		path string // "" when none
		says string
	}{
		{"fine", func(*FleetCopy) {}, "", ""},
		{"nodes", func(x *FleetCopy) { x.Component, x.Nodes = "", []string{"10.0.0.1"} }, "", ""},
		{"mode", func(x *FleetCopy) { x.Mode = "0640" }, "", ""},
		{"empty file", func(x *FleetCopy) { x.Content = nil }, "", ""},
		{"no path", func(x *FleetCopy) { x.To = "" }, "to", "missing"},
		{"relative", func(x *FleetCopy) { x.To = "etc/motd" }, "to", "not an absolute path"},
		{"dot-dot", func(x *FleetCopy) { x.To = "/etc/../root/.ssh/authorized_keys" }, "to", `".."`},
		{"NUL", func(x *FleetCopy) { x.To = "/etc/mo\x00td" }, "to", "NUL"},
		{"newline", func(x *FleetCopy) { x.To = "/etc/mo\ntd" }, "to", "newline"},
		{"quote", func(x *FleetCopy) { x.To = "/etc/mo'td" }, "to", "single quote"},
		{"root", func(x *FleetCopy) { x.To = "/" }, "to", "clean path"},
		{"directory", func(x *FleetCopy) { x.To = "/etc/" }, "to", "clean path"},
		{"double slash", func(x *FleetCopy) { x.To = "/etc//motd" }, "to", "clean path"},
		{"engine state", func(x *FleetCopy) { x.To = "/var/lib/deployment-engine/owner" }, "to", "/var/lib/deployment-engine, the engine's own state"},
		{"engine state dir", func(x *FleetCopy) { x.To = "/var/lib/deployment-engine" }, "to", "engine's own state"},
		{"beside the state", func(x *FleetCopy) { x.To = "/var/lib/deployment-engine2/x" }, "", ""},
		{"long path", func(x *FleetCopy) { x.To = "/" + strings.Repeat("a", MaxCopyPath) }, "to", "more than 1024"},
		{"too big", func(x *FleetCopy) { x.Content = make([]byte, MaxCopyBytes+1) }, "content_base64", "4 MiB"},
		{"mode not octal", func(x *FleetCopy) { x.Mode = "0689" }, "mode", "octal"},
		{"mode zero", func(x *FleetCopy) { x.Mode = "0" }, "mode", "octal"},
		{"mode too wide", func(x *FleetCopy) { x.Mode = "17777" }, "mode", "octal"},
		{"both", func(x *FleetCopy) { x.Nodes = []string{"10.0.0.1"} }, "component", "not both"},
		{"neither", func(x *FleetCopy) { x.Component = "" }, "component", "missing"},
		{"bad node", func(x *FleetCopy) { x.Component, x.Nodes = "", []string{"node-1"} }, "nodes[0]", "IPv4"},
		{"in flight", func(x *FleetCopy) { x.MaxInFlight = "0" }, "max_in_flight", ""},
		{"from", func(x *FleetCopy) { from(x, "/etc/motd") }, "", ""},
		{"from and to", func(x *FleetCopy) { x.From = "/etc/motd" }, "from", "not both"},
		{"from relative", func(x *FleetCopy) { from(x, "etc/motd") }, "from", "not an absolute path"},
		{"from dot-dot", func(x *FleetCopy) { from(x, "/etc/../etc/shadow") }, "from", `".."`},
		{"from NUL", func(x *FleetCopy) { from(x, "/etc/mo\x00td") }, "from", "NUL"},
		{"from unclean", func(x *FleetCopy) { from(x, "/etc/./motd") }, "from", "clean path"},
		{"from engine state", func(x *FleetCopy) { from(x, "/var/lib/deployment-engine/owner") }, "from", "engine's own state"},
		{"from with content", func(x *FleetCopy) { from(x, "/etc/motd"); x.Content = []byte("x") }, "content_base64", "no content"},
		{"from with mode", func(x *FleetCopy) { from(x, "/etc/motd"); x.Mode = "0600" }, "content_base64", "no mode"},
		{"from no target", func(x *FleetCopy) { from(x, "/etc/motd"); x.Component = "" }, "component", "missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := ok
			c.edit(&x)
			ps := x.Problems()
			if c.path == "" {
				if len(ps) > 0 {
					t.Fatalf("problems: %+v", ps)
				}
				return
			}
			if len(ps) != 1 || ps[0].Path != c.path || !strings.Contains(ps[0].Reason, c.says) {
				t.Fatalf("problems %+v, want one at %s saying %q", ps, c.path, c.says)
			}
		})
	}
}

// The file travels as base64 and max_in_flight as a number or a string;
// the mode defaults to 0644.
func TestFleetCopyJSON(t *testing.T) {
	var x FleetCopy
	if err := json.Unmarshal([]byte(`{"nodes": ["10.0.0.1"], "to": "/etc/motd", "content_base64": "aGVsbG8K", "max_in_flight": 2}`), &x); err != nil {
		t.Fatal(err)
	}
	if m, ok := x.FileMode(); string(x.Content) != "hello\n" || x.MaxInFlight != "2" || m != 0o644 || !ok {
		t.Fatalf("decoded %+v, mode %o", x, m)
	}
	if err := json.Unmarshal([]byte(`{"to": "/x", "content_base64": "not base64!"}`), &x); err == nil {
		t.Fatal("content that is not base64 was taken")
	}
}

func TestParseCopyOutput(t *testing.T) {
	const sum = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	for _, c := range []struct {
		out  string
		size int64
		ok   bool
	}{
		{sum + " 6", 6, true},
		{sum + " 6\n", 6, true},
		{sum + " 0", 0, true},
		{"", 0, false},
		{"cut: write error", 0, false},
		{sum + " -1", 0, false},
		{sum + " six", 0, false},
		{sum[:63] + " 6", 0, false},
		{strings.ToUpper(sum) + " 6", 0, false},
		{sum + " 6 more", 0, false},
	} {
		got, size, ok := ParseCopyOutput(c.out)
		if ok != c.ok || (ok && (got != sum || size != c.size)) {
			t.Errorf("%q: %q %d %v", c.out, got, size, ok)
		}
	}
}

// What a node printed for a copy from it is taken only when the content
// is the size and SHA-256 the node computed, and within the bound.
func TestParseCopyRead(t *testing.T) {
	const hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03" // sha256("hello\n")
	for _, c := range []struct {
		name, out, says string
	}{
		{"fine", hello + " 6\nhello\n", ""},
		{"no line", "hello", "no checksum"},
		{"not a checksum", "applied meanwhile\nhello\n", "not a checksum"},
		{"short", hello + " 6\nhell", "changed while it was read"},
		{"other content", hello + " 6\nhellO\n", "SHA-256"},
		{"too big", hello + " 4194305\n", "4 MiB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, sum, err := ParseCopyRead([]byte(c.out))
			if c.says == "" {
				if err != nil || string(got) != "hello\n" || sum != hello {
					t.Fatalf("%q %q %v", got, sum, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("err %v, want %q", err, c.says)
			}
		})
	}
}
