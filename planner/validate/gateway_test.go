package validate

import (
	"slices"
	"testing"
)

// Each problem of the gateway names its field, so that the 400 points at
// what to fix; a good gateway decodes with its defaults left to the
// engine.
func TestGateway(t *testing.T) {
	const head = `{"components": {"nats": ["10.0.0.2"]}, "properties": {"domain": "x.local", "home": "10.0.0.1", `
	for _, tc := range []struct {
		name, props string
		want        []string // problem paths; none for a valid config
	}{
		{"own key, user and port", `"root": "pw", "gateway": {"host": "10.0.0.9", "user": "jump", "key": "/root/gw", "port": 2222}`, nil},
		{"the nodes' key", `"key": "/root/k", "gateway": {"host": "10.0.0.9"}`, nil},
		{"no key anywhere", `"root": "pw", "gateway": {"host": "10.0.0.9"}`, []string{"properties.gateway.key"}},
		{"no host", `"key": "/root/k", "gateway": {"port": 22}`, []string{"properties.gateway.host"}},
		{"host name", `"key": "/root/k", "gateway": {"host": "jump.example"}`, []string{"properties.gateway.host"}},
		{"bad port", `"key": "/root/k", "gateway": {"host": "10.0.0.9", "port": 65536}`, []string{"properties.gateway.port"}},
		{"relative key", `"key": "/root/k", "gateway": {"host": "10.0.0.9", "key": "id_rsa"}`, []string{"properties.gateway.key"}},
		{"bad user", `"key": "/root/k", "gateway": {"host": "10.0.0.9", "user": "a b"}`, []string{"properties.gateway.user"}},
		{"unknown field", `"key": "/root/k", "gateway": {"host": "10.0.0.9", "via": "x"}`, []string{"properties.gateway"}},
		{"not an object", `"key": "/root/k", "gateway": ["10.0.0.9"]`, []string{"properties.gateway"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ps := Config([]byte(head+tc.props+`}}`), catalogs)
			var got []string
			for _, p := range ps {
				got = append(got, p.Path)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("problems %+v, want paths %v", ps, tc.want)
			}
			if tc.want == nil && (cfg.Properties.Gateway == nil || cfg.Properties.Gateway.Host != "10.0.0.9") {
				t.Fatalf("gateway not decoded: %+v", cfg.Properties.Gateway)
			}
		})
	}
}

func TestGatewayKeyFile(t *testing.T) {
	if pr := KeyAt("properties.gateway.key", "/nonexistent/key"); pr == nil || pr.Path != "properties.gateway.key" {
		t.Fatalf("a missing key file: %+v", pr)
	}
}
