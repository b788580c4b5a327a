package testbed

import (
	"context"
	"flag"
	"fmt"
	"io"
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

// CLI is `deployment-engine testbed up --nodes N [--name NAME]` and
// `testbed down [--name NAME]`.
func CLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	usage := "usage: deployment-engine testbed up --nodes N [--name NAME] | testbed down [--name NAME] | testbed list"
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("testbed "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "de", "the bed's name")
	nodes := fs.Int("nodes", 3, "how many nodes")
	password := fs.String("root-password", "", "also let root log in with this password")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	switch args[0] {
	case "up":
		b, err := Up(ctx, Options{Name: *name, Nodes: *nodes, RootPassword: *password})
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, n := range b.Nodes {
			fmt.Fprintf(stdout, "%s %s\n", n.IP, b.KeyPath)
		}
		fmt.Fprintf(stdout, "home %s\n", b.Home)
		return 0
	case "down":
		if err := Check(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := Down(*name); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
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
