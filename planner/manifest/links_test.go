package manifest

import (
	"reflect"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

// A consumed link's deployment names the cluster it is taken from; the
// manifest's own name is this deployment, a local link.
func TestConsumedDeployment(t *testing.T) {
	for _, tc := range []struct {
		name, consumes string
		want           *contract.ConsumeLink
	}{
		{"another deployment", `{from: primary, deployment: db}`, &contract.ConsumeLink{From: "primary", Deployment: "db"}},
		{"another deployment, by type", `{deployment: db}`, &contract.ConsumeLink{Deployment: "db"}},
		{"its own name: local", `{from: primary, deployment: web}`, &contract.ConsumeLink{From: "primary"}},
		{"no deployment: local", `{from: primary}`, &contract.ConsumeLink{From: "primary"}},
		{"nil", `nil`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := `{name: web, releases: [{name: r}], instance_groups: [{name: a, instances: 1, networks: [{name: d, static_ips: [10.0.0.1]}], jobs: [{name: j, release: r, consumes: {db: ` + tc.consumes + `}}]}]}`
			cfg, _, err := ToConfig(mustDecode(t, m), Target{Home: "10.0.0.9", Key: "/k"})
			if err != nil {
				t.Fatal(err)
			}
			got, ok := cfg.Properties.Links["j"].Consumes["db"]
			if !ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("consumes.db = %+v (present %v), want %+v", got, ok, tc.want)
			}
		})
	}
}
