package precheck

import (
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// The engine warns when the nodes cannot reach its HTTP address, naming
// both addresses and what to do, and stays silent when they can.
func TestListenWarning(t *testing.T) {
	far := map[string][]string{"web": {"10.0.0.5", "10.0.0.6"}}
	near := map[string][]string{"web": {"127.0.0.2"}}
	for _, tc := range []struct {
		name, listen, home string
		comps              map[string][]string
		want               []string // "" when no warning
	}{
		{"every address", "", "10.0.0.1", far, nil},
		{"0.0.0.0", "0.0.0.0", "10.0.0.1", far, nil},
		{"::", "::", "10.0.0.1", far, nil},
		{"home itself", "10.0.0.1", "10.0.0.1", far, nil},
		{"loopback, nodes on this machine", "127.0.0.1", "127.0.0.1", near, nil},
		{"a host name", "engine.example", "10.0.0.1", far, nil},
		{"loopback, nodes elsewhere", "127.0.0.1", "10.0.0.1", far,
			[]string{"127.0.0.1:50000", "loopback", "10.0.0.5, 10.0.0.6", "10.0.0.1:50000", "curl: (7)", "--listen 10.0.0.1:50000", "0.0.0.0:50000"}},
		{"localhost", "localhost", "10.0.0.1", far, []string{"localhost:50000", "loopback"}},
		{"another address than home", "10.0.0.9", "10.0.0.1", far,
			[]string{"10.0.0.9:50000", "home is 10.0.0.1", "--listen 10.0.0.1:50000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := contract.Config{Components: tc.comps, Properties: contract.Properties{Home: tc.home}}
			got := ListenWarning(tc.listen, 50000, cfg)
			if (got == "") != (tc.want == nil) {
				t.Fatalf("warning %q, want one: %v", got, tc.want != nil)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("warning %q lacks %q", got, w)
				}
			}
		})
	}
}
