package validate

import (
	"encoding/json"
	"net/netip"
	"os"
	"testing"
)

func FuzzConfig(f *testing.F) {
	if b, err := os.ReadFile("testdata/manual.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","disksize":"15"}}`))
	f.Add([]byte(`{"components":{"haproxy":["1.2.3.4","1.2.3.4"]},"properties":null}`))
	f.Add([]byte(`{`))
	f.Add([]byte(`{"components":{"nats":["127.0.0.2"]},"properties":{"domain":"a.b","home":"127.0.0.1","root":"r","links":{"nats":{"consumes":{"db":{"from":"x"},"c":null},"provides":{"db":{"as":"y","shared":true}},"custom_provider_definitions":[{"name":"n","type":"t","properties":["p"]}]}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, ps := Config(b, catalogs)
		if len(ps) > 0 {
			return
		}
		// Accepted: then it must really be valid.
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		p := cfg.Properties
		if p.Domain == "" || (p.Root == "" && p.Key == "") {
			t.Fatalf("accepted a config without domain or credentials: %q", b)
		}
		if _, err := netip.ParseAddr(p.Home); err != nil {
			t.Fatalf("accepted a bad home: %q", b)
		}
		for name, ips := range cfg.Components {
			rule, ok := testRules[name]
			if !ok {
				t.Fatalf("accepted unknown component %q", name)
			}
			if rule == "one" && len(ips) != 1 || len(ips) == 0 {
				t.Fatalf("accepted %d instances of %s", len(ips), name)
			}
			seen := map[string]bool{}
			for _, ip := range ips {
				a, err := netip.ParseAddr(ip)
				if err != nil || !a.Is4() || seen[ip] {
					t.Fatalf("accepted IP %q of %s", ip, name)
				}
				seen[ip] = true
			}
		}
	})
}
