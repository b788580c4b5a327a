package cluster

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/integration/harness"
)

// A machine's init system starts the NATS servers and the engine's
// processes together, in no set order. Five times: the three servers and
// the five processes of the README's split are started in a random order,
// none waiting for another; every process waits for the cluster to form
// (--start-timeout) instead of exiting, and the first deploy succeeds with
// every step run once. With a nats-server binary on PATH (Debian's package
// is 2.9.10), every other round runs the servers as processes of it.
func TestColdStart(t *testing.T) {
	bin, _ := exec.LookPath("nats-server")
	for round := range 5 {
		server := ""
		if round%2 == 1 {
			server = bin
		}
		name := fmt.Sprintf("round-%d-embedded", round+1)
		if server != "" {
			name = fmt.Sprintf("round-%d-%s", round+1, "system-nats-server")
		}
		t.Run(name, func(t *testing.T) { coldStart(t, server) })
	}
	if bin == "" {
		t.Log("no nats-server binary on PATH: every round ran the embedded server (make deps installs Debian's)")
	}
}

func coldStart(t *testing.T, bin string) {
	c, err := newNATS(t.TempDir(), agents(), bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stopAll) // after the engine's processes stop
	opts := processes(t, c)
	engines := make([]*harness.Engine, len(opts))
	type starter struct {
		what  string
		start func()
	}
	var starters []starter
	for i := range c.names {
		starters = append(starters, starter{c.names[i], func() {
			if err := c.start(i); err != nil {
				t.Fatal(err)
			}
		}})
	}
	for i, o := range opts {
		starters = append(starters, starter{o.Args[1], func() { engines[i] = harness.Launch(t, o) }})
	}
	rand.Shuffle(len(starters), func(i, j int) { starters[i], starters[j] = starters[j], starters[i] })
	var order []string
	for _, s := range starters {
		order = append(order, s.what)
		s.start()
		time.Sleep(rand.N(300 * time.Millisecond))
	}
	t.Logf("started in this order: %s", strings.Join(order, ", "))
	began := time.Now()
	for _, e := range engines {
		if err := e.Ready(3 * time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("every process ready %s after the last start", time.Since(began).Round(100*time.Millisecond))
	api := engines[rand.N(2)]
	if log := api.Log(); !strings.Contains(log, "replicas=3") {
		t.Fatalf("the engine did not declare its streams with 3 replicas on a 3-server cluster:\n%s", harness.Tail(log, 20))
	}
	finish(t, api, deploy(t, api), 3*time.Minute)
}
