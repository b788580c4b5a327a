package contract

import (
	"fmt"
	"regexp"
)

// DefaultCluster is the cluster the manual's routes act on: the one every
// engine has, and the only one before clusters were named.
const DefaultCluster = "default"

// clusterNameRe is a DNS label in lower case: a name that fits as it is in
// a NATS subject token, a Prometheus label value, a file name and a URL.
var clusterNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// CheckClusterName refuses what cannot name a cluster, quoting it clipped.
func CheckClusterName(name string) error {
	if !clusterNameRe.MatchString(name) {
		return fmt.Errorf("%q is not a cluster name: 1 to 63 lower-case letters, digits and hyphens, starting and ending with a letter or digit", Clip(name))
	}
	return nil
}
