package bosh

import (
	"reflect"
	"strings"
	"testing"
)

func TestVariables(t *testing.T) {
	tree := map[string]any{
		"web": map[string]any{
			"password": "((web_password))",
			"url":      "https://((system_domain))/x?a=((!raw-name))",
			"list":     []any{"plain", map[string]any{"ca": "((router_ca.certificate))"}},
			"script":   "echo $((1 + 2)); ((i++))",
			"port":     8080,
		},
	}
	redacted := map[string]any{"web": map[string]any{
		"password": "<redacted>",
		"url":      "https://((system_domain))/x?a=((!raw-name))",
		"list":     []any{"plain", map[string]any{"ca": "((router_ca.certificate))"}},
		"script":   "echo $((1 + 2)); ((i++))",
		"port":     8080,
	}}
	got := Variables(tree, redacted, "properties.jobs.")
	want := []string{
		"properties.jobs.web.list[1].ca: ((router_ca.certificate))",
		"properties.jobs.web.password: a ((variable)) in a secret",
		"properties.jobs.web.url: ((!raw-name))",
		"properties.jobs.web.url: ((system_domain))",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	w := VariablesWarning(got)
	if strings.Contains(w, "web_password") || !strings.Contains(w, "((system_domain))") || !strings.Contains(w, "not interpolated") {
		t.Errorf("warning %q", w)
	}
	if VariablesWarning(nil) != "" {
		t.Error("a warning without variables")
	}
}
