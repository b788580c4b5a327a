package bus_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus/bustest"
)

// The cold start against the nats-server a distribution ships (Debian's
// is 2.9.10), its three servers started a second after Declare begins.
// Skipped where no nats-server binary is installed.
func TestDeclareWaitsForColdSystemCluster(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil || testing.Short() {
		t.Skip("no nats-server binary on PATH (apt-get install nats-server), or -short")
	}
	dir := t.TempDir()
	var routes, urls []string
	ports := make([][2]int, 3)
	for i := range ports {
		ports[i] = [2]int{bustest.FreePort(t), bustest.FreePort(t)}
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i][1]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i][0]))
	}
	var cmds []*exec.Cmd
	for i, p := range ports {
		conf := fmt.Sprintf("server_name: s%d\nhost: 127.0.0.1\nport: %d\njetstream { store_dir: %q }\ncluster { name: de-sys, host: 127.0.0.1, port: %d, routes: [%s] }\n",
			i+1, p[0], filepath.Join(dir, fmt.Sprint(i)), p[1], strings.Join(routes, ", "))
		path := filepath.Join(dir, fmt.Sprintf("s%d.conf", i+1))
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, exec.Command(bin, "-c", path))
	}
	started := make(chan struct{})
	t.Cleanup(func() {
		<-started
		for _, c := range cmds {
			if c.Process != nil {
				_ = c.Process.Kill()
				_ = c.Wait()
			}
		}
	})
	go func() {
		time.Sleep(time.Second)
		for _, c := range cmds {
			if err := c.Start(); err != nil {
				t.Error(err)
			}
		}
		close(started)
	}()
	coldDeclare(t, strings.Join(urls, ","), 90*time.Second)
}
