package installer

import (
	"reflect"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestParseProbe(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     contract.ProbeResult
		err      bool
	}{
		{name: "debian node with monit, owned, two names",
			in: "cpu=2\nram=4049952\ndisk=56307507\nowner=e-1f2a\nos_id=debian\nos_version=12\nos_name=Debian GNU/Linux 12 (bookworm)\nmonit=5.33.0\nname=10.0.0.1 \nname=\n",
			want: contract.ProbeResult{Owner: "e-1f2a", Monit: "5.33.0",
				OS:       contract.NodeOS{ID: "debian", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
				Hardware: contract.NodeHardware{CPU: 2, RAM: 4049952, DISK: contract.DiskMB(56307507)},
				Names:    []contract.NameLookup{{Addrs: []string{"10.0.0.1"}}, {Addrs: []string{}}}}},
		{name: "no monit, no os-release, no owner",
			in:   "cpu=1\nram=1000\ndisk=2048\nowner=\nmonit=\n",
			want: contract.ProbeResult{Hardware: contract.NodeHardware{CPU: 1, RAM: 1000, DISK: 2}}},
		{name: "login noise before the report",
			in:   "Welcome!\ncpu=1\nram=1000\ndisk=2048\n",
			want: contract.ProbeResult{Hardware: contract.NodeHardware{CPU: 1, RAM: 1000, DISK: 2}}},
		{name: "no hardware", in: "owner=\n", err: true},
		{name: "zero cores", in: "cpu=0\nram=1000\ndisk=2048\n", err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseProbe(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if !tc.err && !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// The probe's report comes from the node: nothing in it may crash the engine.
func FuzzParseProbe(f *testing.F) {
	f.Add("cpu=2\nram=4049952\ndisk=56307507\nowner=e-1\nos_id=debian\nmonit=5.33.0\nname=10.0.0.1\n")
	f.Add("cpu=x\n=\nname\n")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseProbe(s)
		if err == nil && (r.Hardware.CPU < 1 || r.Hardware.RAM < 1) {
			t.Errorf("accepted a report without hardware: %q", s)
		}
	})
}
