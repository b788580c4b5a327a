// Package cluster runs the engine split over processes on a real 3-server
// NATS JetStream cluster (api+planner twice, two installers, monitor+logs)
// against a shared bed of 4 real nodes, and takes parts away under running
// deployments: a NATS server, the one that leads the step stream, an
// installer, the leading planner, a server for good, then the quorum.
// Every deployment must still end as it should, each step run exactly once
// on its node (counted on the node), and with no quorum every route answers
// 503 at once. A schedule of a rolling restart every minute runs once a
// minute, its runs never overlapping, also across a kill -9 of the planner
// holding the schedules' lease.
package cluster

import (
	"os"
	"testing"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
)

var bed *testbed.Bed

func TestMain(m *testing.M) {
	code := testbed.Main(m, testbed.Options{Name: "cluster", Nodes: 4}, &bed)
	harness.RemoveBinary()
	os.Exit(code)
}
