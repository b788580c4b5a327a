package validate

import (
	"encoding/json"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// rules is a narrow stand-in for a catalog: "one" components take exactly
// one IP, the others one or more. The real catalogs are tested with the
// real validation in the planner's own tests.
type rules map[string]string

func (r rules) Validate(cfg contract.Config) []contract.Problem {
	var out []contract.Problem
	for name, ips := range cfg.Components {
		rule, ok := r[name]
		switch {
		case !ok:
			out = append(out, contract.Problem{Path: "components." + name, Component: name, Reason: "unknown component"})
		case rule == "one" && len(ips) != 1:
			out = append(out, contract.Problem{Path: "components." + name, Component: name, Reason: "needs exactly one instance"})
		case len(ips) == 0:
			out = append(out, contract.Problem{Path: "components." + name, Component: name, Reason: "needs at least one instance"})
		}
	}
	return out
}

var testRules = rules{"haproxy": "one", "nats": "many", "nfs_server": "one", "database": "one",
	"cloud_controller_ng": "many", "etcd": "one", "uaa": "many", "login": "many", "hm9000": "many",
	"loggregator": "one", "collector": "many", "syslog_aggregator": "one", "gorouter": "many", "dea": "many"}

func catalogs(name string) (Catalog, bool) {
	if name == "cloudfoundry" {
		return testRules, true
	}
	return nil, false
}

func TestManualExample(t *testing.T) {
	b, err := os.ReadFile("testdata/manual.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, ps := Config(b, catalogs)
	if len(ps) != 0 {
		t.Fatalf("manual's example rejected: %+v", ps)
	}
	if cfg.Properties.Disksize != contract.F(15) || cfg.Properties.Root != "123456" || len(cfg.Components["uaa"]) != 3 {
		t.Fatalf("decoded wrong: %+v", cfg)
	}
}

func TestProblems(t *testing.T) {
	const props = `"properties":{"domain":"cf.local","home":"127.0.0.1","root":"x"}`
	tests := []struct {
		name string
		body string
		path string // a problem must name this path
		want string // and say this
	}{
		{"malformed", `{"components":`, "", "malformed JSON"},
		{"not an object", `[1,2]`, "", "malformed JSON"},
		{"null body", `null`, "", "JSON object"},
		{"unknown top field", `{"components":{"nats":["127.0.0.2"]},` + props + `,"extra":1}`, "extra", "unknown field"},
		{"unknown component", `{"components":{"nope":["127.0.0.2"]},` + props + `}`, "components.nope", "unknown component"},
		{"bad ip", `{"components":{"nats":["127.0.0.300"]},` + props + `}`, "components.nats[0]", "not an IPv4"},
		{"ipv6", `{"components":{"nats":["::1"]},` + props + `}`, "components.nats[0]", "not an IPv4"},
		{"duplicate ip", `{"components":{"nats":["127.0.0.2","127.0.0.2"]},` + props + `}`, "components.nats[1]", "twice"},
		{"two haproxy", `{"components":{"haproxy":["127.0.0.2","127.0.0.3"]},` + props + `}`, "components.haproxy", "exactly one"},
		{"no nats", `{"components":{"nats":[]},` + props + `}`, "components.nats", "at least one"},
		{"ips not a list", `{"components":{"nats":"127.0.0.2"},` + props + `}`, "components.nats", "list of IP"},
		{"no properties", `{"components":{"nats":["127.0.0.2"]}}`, "properties", "missing"},
		{"no domain", `{"components":{"nats":["127.0.0.2"]},"properties":{"home":"127.0.0.1","root":"x"}}`, "properties.domain", "missing"},
		{"no root", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1"}}`, "properties.root", "missing"},
		{"bad home", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"x","root":"r"}}`, "properties.home", "not an IPv4"},
		{"disksize word", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","disksize":"big"}}`, "properties.disksize", "whole number"},
		{"checkdisk 2", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","checkdisk":2}}`, "properties.checkdisk", "0 or 1"},
		{"checkdisk without disksize", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","checkdisk":"1"}}`, "properties.disksize", "missing"},
		{"adduser without user", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","adduser":1,"password":"p"}}`, "properties.user", "missing"},
		{"adduser without password", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","adduser":1,"user":"vcap"}}`, "properties.password", "missing"},
		{"unknown property", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","colour":"red"}}`, "properties.colour", "unknown property"},
		{"unknown catalog", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","catalog":"nope"}}`, "properties.catalog", "unknown catalog"},
		{"a disk's device outside /dev", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","persistent_disks":{"127.0.0.2":{"device":"/etc/passwd"}}}}`, "properties.persistent_disks.127.0.0.2", "not a block device"},
		{"a disk's device going up", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","persistent_disks":{"127.0.0.2":{"device":"/dev/../etc/x"}}}}`, "properties.persistent_disks.127.0.0.2", "not a block device"},
		{"a disk's size below 0", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","persistent_disks":{"127.0.0.2":{"size_mb":-1}}}}`, "properties.persistent_disks.127.0.0.2", "size_mb"},
		{"node keys for some nodes, no root", `{"components":{"nats":["127.0.0.2","127.0.0.3"]},"properties":{"domain":"a.b","home":"127.0.0.1","node_keys":{"127.0.0.2":"/k"}}}`, "properties.root", "127.0.0.3 has no key of its own"},
		{"a node key by name", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","node_keys":{"db":"/k"}}}`, "properties.node_keys.db", "by node IP"},
		{"a node key's text", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","node_keys":{"127.0.0.2":"-----BEGIN OPENSSH PRIVATE KEY-----"}}}`, "properties.node_keys.127.0.0.2", "absolute path of a key file"},
		{"a node key's relative path", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","node_keys":{"127.0.0.2":"keys/z2"}}}`, "properties.node_keys.127.0.0.2", "absolute path"},
		{"node keys not an object", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","node_keys":["/k"]}}`, "properties.node_keys", "object of node IP"},
		{"a node user by name", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","node_users":{"db":"admin"}}}`, "properties.node_users.db", "by node IP"},
		{"a node user's shell", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","node_users":{"127.0.0.2":"admin; reboot"}}}`, "properties.node_users.127.0.0.2", "not a user name"},
		{"node users not an object", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","node_users":"admin"}}`, "properties.node_users", "object of node IP"},
		{"a disk by name", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","persistent_disks":{"db":{}}}}`, "properties.persistent_disks.db", "by node IP"},
		{"a disk's unknown field", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","persistent_disks":{"127.0.0.2":{"fs":"xfs"}}}}`, "properties.persistent_disks", "size_mb"},
		{"relative key path", `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","key":"id_rsa"}}`, "properties.key", "absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ps := Config([]byte(tt.body), catalogs)
			for _, p := range ps {
				if p.Path == tt.path && strings.Contains(p.Reason, tt.want) {
					return
				}
			}
			t.Fatalf("want a problem at %q saying %q, got %+v", tt.path, tt.want, ps)
		})
	}
}

func TestEveryProblemNamed(t *testing.T) {
	body := `{"components":{"nope":["1.2.3.4"],"nats":["bad","127.0.0.2","127.0.0.2"],"haproxy":["127.0.0.3","127.0.0.4"]},"properties":{"home":"x"}}`
	_, ps := Config([]byte(body), catalogs)
	want := []string{"components.nope", "components.nats[0]", "components.nats[2]", "components.haproxy", "properties.domain", "properties.home", "properties.root"}
	for _, w := range want {
		found := false
		for _, p := range ps {
			found = found || p.Path == w
		}
		if !found {
			t.Errorf("no problem at %s in %+v", w, ps)
		}
	}
}

func TestNumbersAsStrings(t *testing.T) {
	body := `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","disksize":"15","checkdisk":"1","adduser":"0"}}`
	cfg, ps := Config([]byte(body), catalogs)
	if len(ps) != 0 {
		t.Fatal(ps)
	}
	if cfg.Properties.Disksize.N != 15 || cfg.Properties.Checkdisk.N != 1 || !cfg.Properties.Adduser.Set {
		t.Fatalf("got %+v", cfg.Properties)
	}
}

// A webhook naming an address webhooks may not reach is refused up front,
// naming the flag that allows it; a host name is left to the dialler.
func TestWebhookURLs(t *testing.T) {
	own := func() []netip.Addr { return []netip.Addr{netip.MustParseAddr("192.0.2.10")} }
	def := Webhooks(contract.WebhookPolicy{Own: own})
	loop := Webhooks(contract.WebhookPolicy{Own: own, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	tests := []struct {
		url  string
		opt  Option
		want string // "" for accepted
	}{
		{"https://hooks.example/x", def, ""},
		{"http://localhost:2812/", def, ""},
		{"http://10.0.0.9:9000/hook", def, ""},
		{"http://127.0.0.1:2812/", def, "127.0.0.1 is a loopback address; allow its network with serve --webhook-allow"},
		{"http://169.254.169.254/latest/meta-data/", def, "169.254.169.254 is a link-local address; allow its network with serve --webhook-allow"},
		{"http://[fe80::1]/", def, "link-local"},
		{"http://0.0.0.0/", def, "unspecified"},
		{"http://192.0.2.10:50000/", def, "one of the engine's own addresses"},
		{"http://127.0.0.1:9000/hook", loop, ""},
		{"http://169.254.169.254/", loop, "link-local"},
		{"ftp://hooks.example/", def, "must be an http:// or https:// URL"},
		{contract.Redacted, def, ""},
	}
	for _, tt := range tests {
		body := `{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r",` +
			`"notify":{"webhooks":[{"url":"https://ok.example/"},{"url":` + strconv.Quote(tt.url) + `}]}}}`
		_, ps := Config([]byte(body), catalogs, tt.opt)
		switch {
		case tt.want == "" && len(ps) > 0:
			t.Errorf("%s refused: %+v", tt.url, ps)
		case tt.want != "" && (len(ps) != 1 || ps[0].Path != "properties.notify.webhooks[1].url" || !strings.Contains(ps[0].Reason, tt.want)):
			t.Errorf("%s: got %+v, want %q at properties.notify.webhooks[1].url", tt.url, ps, tt.want)
		}
	}
}

// TestComponentNames: a hyphen is harmless in every place a component's
// name travels (a NATS token, a file, a monit check, a log), as BOSH job
// names have it; what a subject, a path or a shell could misread is not.
func TestComponentNames(t *testing.T) {
	const props = `"properties":{"domain":"cf.local","home":"127.0.0.1","root":"x"}`
	tests := []struct {
		name string
		ok   bool
	}{
		{"metron_agent", true},
		{"metron-agent", true},
		{"cloud_controller-ng2", true},
		{"a.b", false},
		{"a/b", false},
		{"a b", false},
		{"a*", false},
		{"a>", false},
		{"-a", false},
		{"9a", false},
		{"Web", false},
		{strings.Repeat("a", 65), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := contract.ValidComponentName(tt.name); got != tt.ok {
				t.Fatalf("ValidComponentName(%q) = %v, want %v", tt.name, got, tt.ok)
			}
			cats := func(string) (Catalog, bool) { return rules{tt.name: "many"}, true }
			body, _ := json.Marshal(tt.name)
			_, ps := Config([]byte(`{"components":{`+string(body)+`:["127.0.0.2"]},`+props+`}`), cats)
			named := false
			for _, p := range ps {
				named = named || strings.Contains(p.Reason, "not a valid component name")
			}
			if named == tt.ok {
				t.Fatalf("config with component %q: problems %+v, want valid=%v", tt.name, ps, tt.ok)
			}
		})
	}
}
