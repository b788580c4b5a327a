package contract

import (
	"fmt"
	"time"
)

// DefaultCluster is the cluster the manual's routes act on: the one every
// engine has, and the only one before clusters were named.
const DefaultCluster = "default"

// clusterNameRe is a DNS label in lower case: a name that fits as it is in
// a NATS subject token, a Prometheus label value, a file name and a URL.
var clusterNameRe = lazyRegexp(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckClusterName refuses what cannot name a cluster, quoting it clipped.
func CheckClusterName(name string) error {
	if !clusterNameRe().MatchString(name) {
		return fmt.Errorf("%q is not a cluster name: 1 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit", Clip(name))
	}
	return nil
}

// Cluster is one of the engine's clusters, as GET /clusters lists them:
// the default one and each named one. Nodes and Catalog are its stored
// config's (none before a config is posted to it).
//
//	{"v": 1, "name": "prod", "created": "2026-12-06T10:00:00Z", "by": "alice",
//	 "catalog": "starter", "nodes": ["10.0.0.5", "10.0.0.6"]}
type Cluster struct {
	V       int       `json:"v"`
	Name    string    `json:"name"`
	Created time.Time `json:"created,omitzero"`
	By      string    `json:"by,omitempty"`
	Catalog string    `json:"catalog,omitempty"`
	Nodes   []string  `json:"nodes"`
	// Deleting is the deployment of the cluster's delete while it runs:
	// the cluster goes once it succeeded and its nodes are left.
	Deleting string `json:"deleting,omitempty"`
}

// ClusterCreate is the body of POST /clusters.
type ClusterCreate struct {
	Name string `json:"name"`
}

// ClusterDeleted answers a named cluster's planner's delete command: the
// deployment that takes the cluster off its nodes ("" when the cluster
// placed nothing).
type ClusterDeleted struct {
	V  int    `json:"v"`
	ID string `json:"id"`
}

// ClusterLeave asks a named cluster's planner, once its delete's
// deployment succeeded, to remove the engine's state from the nodes that
// deployment left and to forget the cluster's config.
type ClusterLeave struct {
	V          int    `json:"v"`
	Deployment string `json:"deployment"`
}

// ClusterLeft answers ClusterLeave: the nodes left.
type ClusterLeft struct {
	V     int      `json:"v"`
	Nodes []string `json:"nodes"`
}
