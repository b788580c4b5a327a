package validate

import (
	"reflect"
	"testing"
)

// What a manifest's config carries beside the jobs' trees reads back:
// v1's global tree and the places its variables went.
func TestManifestProperties(t *testing.T) {
	b := []byte(`{"components": {"nats": ["10.0.0.2"]}, "properties": {"domain": "cf.local", "home": "10.0.0.1", "root": "x",
		"global": {"nats": {"user": "n"}}, "secret_properties": ["global.nats.user"]}}`)
	cfg, ps := Config(b, catalogs)
	if len(ps) != 0 {
		t.Fatalf("rejected: %+v", ps)
	}
	if !reflect.DeepEqual(cfg.Properties.Global, map[string]any{"nats": map[string]any{"user": "n"}}) ||
		!reflect.DeepEqual(cfg.Properties.SecretProperties, []string{"global.nats.user"}) {
		t.Fatalf("decoded: %+v", cfg.Properties)
	}
	_, ps = Config([]byte(`{"components": {"nats": ["10.0.0.2"]}, "properties": {"domain": "cf.local", "home": "10.0.0.1", "root": "x",
		"secret_properties": "global.x"}}`), catalogs)
	if len(ps) != 1 || ps[0].Path != "properties.secret_properties" {
		t.Fatalf("a string for the list: %+v", ps)
	}
}
