package testbed

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// New brings up a bed for a test and tears it down when the test ends,
// failed or not. A machine that cannot run one fails the test with the
// reason: never a silent skip.
func New(t testing.TB, o Options) *Bed {
	t.Helper()
	if err := Check(); err != nil {
		t.Fatal(err)
	}
	b, err := Up(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Down(); err != nil {
			t.Errorf("tear down test bed %s: %v", b.Name, err)
		}
	})
	return b
}

// CLI is `de-testbed up|down|list|reboot`.
func CLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := `usage: de-testbed up --nodes N [--name NAME] [--cpus C[,C...]] [--memory M[,M...]] [--disk D] [--isolated]
       de-testbed down [--name NAME]
       de-testbed reboot NAME IP
       de-testbed list
--cpus and --memory take one value for every node, or a list applied to the nodes in order (the last one repeats).
--isolated puts the nodes on a bridge this machine cannot reach, behind one more node, the gateway, that
forwards their traffic to home: reach them through its sshd (a jump host, properties.gateway).`
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("de-testbed "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "de", "the bed's name")
	nodes := fs.Int("nodes", 3, "how many nodes")
	password := fs.String("root-password", "", "also let root log in with this password")
	cpus := fs.String("cpus", "", "each node's CPUs (e.g. 1 or 0.5), or a comma list per node")
	memory := fs.String("memory", "", "each node's memory (e.g. 512M, 2G), or a comma list per node")
	disk := fs.String("disk", "8G", "each node's disk")
	isolated := fs.Bool("isolated", false, "put the nodes behind a gateway node, out of this machine's reach")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	switch args[0] {
	case "up":
		o := Options{Name: *name, Nodes: *nodes, RootPassword: *password, Isolated: *isolated}
		var err error
		if o.PerNode, err = perNode(*nodes, *cpus, *memory); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		if o.Disk, err = ParseSize(*disk); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		b, err := Up(ctx, o)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, n := range b.Nodes {
			fmt.Fprintf(stdout, "%s %s\n", n.IP, b.KeyPath)
		}
		if b.Gateway != nil {
			fmt.Fprintf(stdout, "gateway %s %s\n", b.Gateway.IP, b.KeyPath)
		}
		fmt.Fprintf(stdout, "home %s\n", b.Home)
		fmt.Fprintf(stdout, "name %s\n", b.Name)
		return 0
	case "down":
		if err := Check(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := Down(resolve(*name)); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	case "reboot":
		if fs.NArg() != 2 {
			fmt.Fprintln(stderr, usage)
			return 2
		}
		if err := Check(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		n, err := FindNode(fs.Arg(0), fs.Arg(1))
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := n.Reboot(ctx); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s rebooted\n", n.IP)
		return 0
	case "list":
		names, err := List()
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, n := range names {
			fmt.Fprintln(stdout, n)
		}
		return 0
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

// FindNode is the node of bed name (or name with DE_TESTBED_TAG
// appended) whose address is ip.
func FindNode(name, ip string) (*Node, error) {
	b, err := Load(resolve(name))
	if err != nil {
		return nil, fmt.Errorf("testbed: no bed %q (see `testbed list`): %w", name, err)
	}
	for _, n := range b.Nodes {
		if n.IP == ip {
			return n, nil
		}
	}
	return nil, fmt.Errorf("testbed: bed %s has no node %s", b.Name, ip)
}

// resolve is the bed `up --name name` made: with DE_TESTBED_TAG appended
// when such a bed exists.
func resolve(name string) string {
	if tagged := (Options{Name: name}).name(); tagged != name {
		if _, err := os.Stat(filepath.Join(Root, tagged)); err == nil {
			return tagged
		}
	}
	return name
}

// perNode turns --cpus and --memory lists into each node's limits.
func perNode(nodes int, cpus, memory string) ([]Limits, error) {
	split := func(s string) []string {
		if strings.TrimSpace(s) == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	cl, ml := split(cpus), split(memory)
	out := make([]Limits, max(nodes, 0))
	for i := range out {
		if len(cl) > 0 {
			v, err := strconv.ParseFloat(strings.TrimSpace(cl[min(i, len(cl)-1)]), 64)
			if err != nil || v <= 0 || v > 1024 {
				return nil, fmt.Errorf("testbed: --cpus %q: want a positive number such as 1 or 0.5", cpus)
			}
			out[i].CPUs = v
		}
		if len(ml) > 0 {
			v, err := ParseSize(ml[min(i, len(ml)-1)])
			if err != nil || v < 16<<20 {
				return nil, fmt.Errorf("testbed: --memory %q: want a size of at least 16M, such as 512M or 2G", memory)
			}
			out[i].Memory = v
		}
	}
	return out, nil
}
