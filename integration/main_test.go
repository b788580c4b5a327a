package integration

import (
	"os"
	"testing"

	"github.com/deployment-engine/engine/integration/harness"
)

// TestMain removes the engine harness.Binary built once the tests have run.
func TestMain(m *testing.M) {
	os.Exit(harness.Main(m))
}
