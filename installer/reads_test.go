package installer

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
	"github.com/deployment-engine/engine/services/subject"
)

// inNode runs script in bash in the test node's mount namespace, as a
// session's shell there would, and returns its stdout.
func inNode(t *testing.T, script string) []byte {
	t.Helper()
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(sshd.Process.Pid), "-m", "--", "/bin/bash", "-c", script)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return out
}

// What a node's agent answers in its own process for a plan's read of the
// markers and for a deploy's check is what the scripts it stands in for
// print on the same node, markers of every shape included.
func TestAgentReadsMatchTheirScripts(t *testing.T) {
	e := transport{name: "agent", agent: true}.env(t)
	storeConfig(t, e)
	applied := nodePath(nodefs.Applied)
	if err := os.MkdirAll(applied+"/a-dir", 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"rd-c.start": "h1 d-1\n", "rd-c.empty": "", "rd-c.bare": "h2", "rd-c.blanks": "  h3\td-3  \n", ".rd-hidden": "h4 d\n",
	} {
		if err := os.WriteFile(applied+"/"+name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(applied + "/" + name) })
	}
	if err := os.Symlink("rd-c.start", applied+"/rd-link"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(applied + "/rd-link"); _ = os.Remove(applied + "/a-dir") })

	runs := testutil.ToFloat64(e.ins.metrics.agentRuns)
	rep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerExec(), contract.Exec{V: 1, Node: nodeIP, Script: nodefs.MarkersScript})
	var x contract.ExecReply
	if err != nil || rep.Code != 200 || json.Unmarshal(rep.Body, &x) != nil || x.ExitCode != 0 {
		t.Fatalf("markers read: %v %+v", err, rep)
	}
	if want := string(inNode(t, nodefs.MarkersScript)); x.Output != want {
		t.Errorf("the agent's markers read:\n%s\nthe script's:\n%s", x.Output, want)
	}

	prep, err := kit.Request(context.Background(), e.ins.o.NC, subject.InstallerProbe(), contract.Probe{V: 1, Nodes: []string{nodeIP}, Auth: contract.Auth{Key: keyPath}, TimeoutMS: 8000})
	var out contract.ProbeReply
	if err != nil || prep.Code != 200 || json.Unmarshal(prep.Body, &out) != nil || len(out.Nodes) != 1 {
		t.Fatalf("probe: %v %+v", err, prep)
	}
	if want := probed(nodeIP, inNode(t, probeScript), nil, nil); !reflect.DeepEqual(out.Nodes[0], want) {
		t.Errorf("the agent's check:\n%+v\nthe script's:\n%+v", out.Nodes[0], want)
	}
	if testutil.ToFloat64(e.ins.metrics.agentRuns)-runs != 2 {
		t.Errorf("%v reads went through the agent, want 2", testutil.ToFloat64(e.ins.metrics.agentRuns)-runs)
	}
}
