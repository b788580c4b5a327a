package installer

import (
	"errors"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// A node's upload token derives from its agent password; an installer
// without the agent secret gives none (the node puts nothing it compiled)
// and refuses the agent's own password.
func TestUploadAndAgentSecrets(t *testing.T) {
	pass := func(ip string) string { return "pass-of-" + ip }
	with := &Installer{o: Options{AgentPassword: pass}}
	for _, tc := range []struct {
		i       *Installer
		name    string
		want    string
		refused bool
	}{
		{with, "upload", bus.UploadToken("pass-of-10.0.0.2"), false},
		{with, "agent", "pass-of-10.0.0.2", false},
		{&Installer{}, "upload", "", false},
		{&Installer{}, "agent", "", true},
	} {
		got, err := tc.i.secretFor(t.Context(), contract.Config{}, tc.name, "10.0.0.2")
		var p permanent
		if got != tc.want || (err != nil) != tc.refused || (err != nil && !errors.As(err, &p)) {
			t.Errorf("%s (agent secret %v): %q, %v; want %q, refused %v", tc.name, tc.i.o.AgentPassword != nil, got, err, tc.want, tc.refused)
		}
	}
	if bus.UploadToken("pass-of-10.0.0.2") == "pass-of-10.0.0.2" || bus.UploadToken("a") == bus.UploadToken("b") {
		t.Error("the upload token is the password, or the same for two passwords")
	}
}
