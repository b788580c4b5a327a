package installer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/monittest"
	"github.com/deployment-engine/engine/services/nodefs"
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

// The node check reads with the shell's builtins what it read with tools
// before (nproc, awk, df | awk, monit -V | sed, getent | awk | sort -u): the
// same answers, in sh and in bash, which a node's login shell may be.
func TestProbeScriptMatchesTools(t *testing.T) {
	tools := `echo "cpu=$(nproc)"
echo "ram=$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
echo "disk=$(df -Pk / | awk 'NR==2{print $2}')"
echo "monit=$(monit -V 2>/dev/null | sed -n 's/.*[Vv]ersion \([0-9][0-9.]*\).*/\1/p' | head -n1)"
for n in "$@"; do echo "name=$(getent ahostsv4 "$n" 2>/dev/null | awk '{print $1}' | sort -u | tr '\n' ' ')"; done
`
	names := []string{"localhost", "nonexistent.invalid"}
	want, err := exec.Command("sh", append([]string{"-c", tools, "sh"}, names...)...).Output()
	if err != nil {
		t.Fatal(err)
	}
	wantR, err := parseProbe(string(want))
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range []string{"sh", "bash"} {
		t.Run(sh, func(t *testing.T) {
			out, err := exec.Command(sh, append([]string{"-c", probeScript, sh}, names...)...).Output()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			got, err := parseProbe(string(out))
			if err != nil {
				t.Fatal(err)
			}
			if got.Hardware != wantR.Hardware || got.Monit != wantR.Monit || !reflect.DeepEqual(got.Names, wantR.Names) {
				t.Errorf("with builtins %+v %q %+v\nwith tools    %+v %q %+v", got.Hardware, got.Monit, got.Names, wantR.Hardware, wantR.Monit, wantR.Names)
			}
			if got.OS.ID == "" || got.OS.PrettyName == "" {
				t.Errorf("no OS read: %+v", got.OS)
			}
		})
	}
}

// The node check reads monit's version from its daemon's HTTP answer when
// it runs in bash, without monit's client, and from the client where the
// shell has no /dev/tcp (here a client that says another version).
func TestProbeReadsMonitOverHTTP(t *testing.T) {
	real, err := exec.Command("monit", "-V").Output()
	if err != nil {
		t.Fatalf("this test needs monit: run `make deps` as root: %v", err)
	}
	want := strings.TrimSpace(regexp.MustCompile(`[Vv]ersion ([0-9.]+)`).FindStringSubmatch(string(real))[1])
	dir := t.TempDir()
	_, port := monittest.Start(t, dir, "")
	if err := os.WriteFile(filepath.Join(dir, "monit"), []byte("#!/bin/sh\necho 'This is Monit version 0.1'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := strings.ReplaceAll(probeScript, "/dev/tcp/"+nodefs.MonitHTTP, fmt.Sprintf("/dev/tcp/127.0.0.1/%d", port))
	for sh, want := range map[string]string{"bash": want, "sh": "0.1"} {
		cmd := exec.Command(sh, "-c", script, sh)
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v: %s", sh, err, out)
		}
		got, err := parseProbe(string(out))
		if err != nil {
			t.Fatal(err)
		}
		if got.Monit != want {
			t.Errorf("%s: monit %q, want %q", sh, got.Monit, want)
		}
	}
}
