package cloudconfig

import (
	"fmt"
	"slices"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// Group is a manifest's instance group as placement sees it.
type Group struct {
	Name      string
	Instances int
	// AZs are the zones its instances may go in; none: any zone.
	AZs []string
	// Static are its static IPs, one per instance, when it gives them.
	Static []string
}

// Placement is each group's machines, by instance index.
type Placement map[string][]string

// Place puts each group's instances on machines of cc, one instance a
// machine. A static IP is that machine, refused by name when no zone
// holds it or when it is in a zone the group does not list. An instance
// without one keeps the machine prev gave the same group and index while
// that machine is still free and in the group's zones; a new one goes on
// a free machine of the group's zone with the fewest of its instances.
// A group that finds no free machine is refused naming its zones.
func Place(cc contract.CloudConfig, groups []Group, prev Placement) (Placement, error) {
	out := Placement{}
	taken := map[string]string{} // machine → the group holding it
	for _, g := range groups {
		if err := checkZones(cc, g); err != nil {
			return nil, err
		}
		for _, ip := range g.Static {
			az := AZOf(cc, ip)
			if az == "" {
				return nil, fmt.Errorf("instance group %s: static IP %s is no machine of the cloud config", g.Name, ip)
			}
			if len(g.AZs) > 0 && !slices.Contains(g.AZs, az) {
				return nil, fmt.Errorf("instance group %s: static IP %s is a machine of zone %s, which the group does not list (%s)", g.Name, ip, az, strings.Join(g.AZs, ", "))
			}
			if other, dup := taken[ip]; dup {
				return nil, fmt.Errorf("instance group %s: static IP %s is instance group %s's too", g.Name, ip, other)
			}
			taken[ip] = g.Name
		}
		if len(g.Static) > 0 {
			out[g.Name] = slices.Clone(g.Static)
		}
	}
	// Machines kept from the last placement first, so that no new
	// instance takes a machine an older one still holds.
	for _, g := range groups {
		if len(g.Static) > 0 {
			continue
		}
		ips := make([]string, g.Instances)
		for i := range ips {
			if i >= len(prev[g.Name]) {
				break
			}
			ip := prev[g.Name][i]
			if _, held := taken[ip]; held || !inZones(cc, g, ip) {
				continue
			}
			ips[i], taken[ip] = ip, g.Name
		}
		out[g.Name] = ips
	}
	for _, g := range groups {
		if len(g.Static) > 0 {
			continue
		}
		if err := fill(cc, g, out[g.Name], taken); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkZones refuses a group that names a zone the cloud config lacks.
func checkZones(cc contract.CloudConfig, g Group) error {
	for _, z := range g.AZs {
		if !slices.ContainsFunc(cc.AZs, func(a contract.CloudAZ) bool { return a.Name == z }) {
			return fmt.Errorf("instance group %s: zone %s is not in the cloud config", g.Name, z)
		}
	}
	return nil
}

func inZones(cc contract.CloudConfig, g Group, ip string) bool {
	az := AZOf(cc, ip)
	return az != "" && (len(g.AZs) == 0 || slices.Contains(g.AZs, az))
}

// fill gives each empty index of ips a free machine, spreading the
// group over its zones as BOSH does.
func fill(cc contract.CloudConfig, g Group, ips []string, taken map[string]string) error {
	zones := g.AZs
	if len(zones) == 0 {
		for _, az := range cc.AZs {
			zones = append(zones, az.Name)
		}
	}
	count := map[string]int{}
	for _, ip := range ips {
		if ip != "" {
			count[AZOf(cc, ip)]++
		}
	}
	for i := range ips {
		if ips[i] != "" {
			continue
		}
		// The zones by how few of the group's instances they hold, then
		// in the group's order.
		order := slices.Clone(zones)
		slices.SortStableFunc(order, func(a, b string) int { return count[a] - count[b] })
		for _, z := range order {
			if ip := free(cc, z, taken); ip != "" {
				ips[i], taken[ip] = ip, g.Name
				count[z]++
				break
			}
		}
		if ips[i] == "" {
			return fmt.Errorf("instance group %s: instance %d finds no free machine in zone(s) %s: add machines to the cloud config, or lower instances", g.Name, i, strings.Join(zones, ", "))
		}
	}
	return nil
}

// free is the first machine of zone z that no instance holds.
func free(cc contract.CloudConfig, z string, taken map[string]string) string {
	for _, az := range cc.AZs {
		if az.Name != z {
			continue
		}
		for _, m := range az.Machines {
			if _, held := taken[m.IP]; !held {
				return m.IP
			}
		}
	}
	return ""
}
