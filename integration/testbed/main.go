package testbed

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// Main runs a test package on one bed shared by all its tests: it brings
// the bed up with o (Up checks the machine and removes what it made when
// it fails), sets *bed, runs the tests and tears the bed down. It returns
// the exit code for os.Exit: 1 when the bed could not be brought up or
// torn down.
func Main(m *testing.M, o Options, bed **Bed) int {
	b, err := Up(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*bed = b
	code := m.Run()
	if err := b.Down(); err != nil {
		fmt.Fprintln(os.Stderr, "tear down:", err)
		code = 1
	}
	return code
}
