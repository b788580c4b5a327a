package engine

import (
	"fmt"
	"strings"
)

// Services are the names serve --only accepts.
var Services = []string{"api", "planner", "installer", "monitor", "notify", "logs"}

// CheckOnly refuses a service list naming a service the engine does not
// have, or none at all: a typo would otherwise start a process that runs
// nothing and says nothing.
func CheckOnly(only []string) error {
	if len(only) == 0 {
		return nil
	}
	var bad []string
	for _, n := range only {
		known := false
		for _, s := range Services {
			known = known || n == s
		}
		if !known {
			bad = append(bad, fmt.Sprintf("%q", n))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("--only: unknown service %s; the services are %s", strings.Join(bad, ", "), strings.Join(Services, ", "))
	}
	return nil
}
