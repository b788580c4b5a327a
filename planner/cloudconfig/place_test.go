package cloudconfig

import (
	"reflect"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func twoZones() contract.CloudConfig {
	return contract.CloudConfig{Home: "10.0.0.1", AZs: []contract.CloudAZ{
		{Name: "z1", Machines: []contract.CloudMachine{{IP: "10.0.0.5"}, {IP: "10.0.0.6"}}},
		{Name: "z2", Machines: []contract.CloudMachine{{IP: "10.0.0.7"}, {IP: "10.0.0.8"}}},
	}}
}

func TestPlace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		groups []Group
		prev   Placement
		want   Placement
		err    string
	}{
		{name: "static IPs are their machines",
			groups: []Group{{Name: "db", Instances: 2, Static: []string{"10.0.0.8", "10.0.0.5"}}},
			want:   Placement{"db": {"10.0.0.8", "10.0.0.5"}}},
		{name: "spread over the group's zones",
			groups: []Group{{Name: "web", Instances: 3, AZs: []string{"z1", "z2"}}},
			want:   Placement{"web": {"10.0.0.5", "10.0.0.7", "10.0.0.6"}}},
		{name: "one zone",
			groups: []Group{{Name: "web", Instances: 2, AZs: []string{"z2"}}},
			want:   Placement{"web": {"10.0.0.7", "10.0.0.8"}}},
		{name: "no zones: any",
			groups: []Group{{Name: "web", Instances: 1}},
			want:   Placement{"web": {"10.0.0.5"}}},
		{name: "static IPs first: another group's instance goes around them",
			groups: []Group{{Name: "web", Instances: 1, AZs: []string{"z1"}}, {Name: "db", Instances: 1, Static: []string{"10.0.0.5"}}},
			want:   Placement{"web": {"10.0.0.6"}, "db": {"10.0.0.5"}}},
		{name: "stable across deploys: the same index keeps its machine",
			groups: []Group{{Name: "web", Instances: 3, AZs: []string{"z1", "z2"}}},
			prev:   Placement{"web": {"10.0.0.8", "10.0.0.6"}},
			want:   Placement{"web": {"10.0.0.8", "10.0.0.6", "10.0.0.5"}}},
		{name: "scaled down, the first indexes keep theirs",
			groups: []Group{{Name: "web", Instances: 1, AZs: []string{"z1", "z2"}}},
			prev:   Placement{"web": {"10.0.0.8", "10.0.0.6"}},
			want:   Placement{"web": {"10.0.0.8"}}},
		{name: "a kept machine now a static IP moves the instance",
			groups: []Group{{Name: "web", Instances: 1, AZs: []string{"z1"}}, {Name: "db", Instances: 1, Static: []string{"10.0.0.5"}}},
			prev:   Placement{"web": {"10.0.0.5"}},
			want:   Placement{"web": {"10.0.0.6"}, "db": {"10.0.0.5"}}},
		{name: "a kept machine no longer in the group's zones moves",
			groups: []Group{{Name: "web", Instances: 1, AZs: []string{"z2"}}},
			prev:   Placement{"web": {"10.0.0.5"}},
			want:   Placement{"web": {"10.0.0.7"}}},
		{name: "a full zone is refused by name",
			groups: []Group{{Name: "web", Instances: 3, AZs: []string{"z1"}}},
			err:    "instance group web: instance 2 finds no free machine in zone(s) z1"},
		{name: "a machine in no cloud config is refused by name",
			groups: []Group{{Name: "db", Instances: 1, Static: []string{"10.0.0.9"}}},
			err:    "instance group db: static IP 10.0.0.9 is no machine of the cloud config"},
		{name: "a static IP outside the group's zones",
			groups: []Group{{Name: "db", Instances: 1, AZs: []string{"z1"}, Static: []string{"10.0.0.7"}}},
			err:    "static IP 10.0.0.7 is a machine of zone z2"},
		{name: "a static IP of two groups",
			groups: []Group{{Name: "a", Instances: 1, Static: []string{"10.0.0.7"}}, {Name: "b", Instances: 1, Static: []string{"10.0.0.7"}}},
			err:    "instance group b: static IP 10.0.0.7 is instance group a's too"},
		{name: "an unknown zone",
			groups: []Group{{Name: "web", Instances: 1, AZs: []string{"z9"}}},
			err:    "instance group web: zone z9 is not in the cloud config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Place(twoZones(), tc.groups, tc.prev)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
