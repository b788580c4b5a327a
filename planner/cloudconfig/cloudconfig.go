// Package cloudconfig reads, checks and keeps the engine's cloud config —
// the machines a BOSH manifest's instances may go on, in availability
// zones, and how the engine logs in to them — and places a manifest's
// instances on them.
package cloudconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/deployment-engine/engine/services/contract"
)

// Bounds on what a cloud config may hold: it comes from outside.
const (
	MaxBytes    = 1 << 20
	maxAZs      = 64
	maxMachines = 4096
	maxPath     = 4096
)

var (
	azName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
)

// Error is a cloud config refused: Path names the field at fault.
type Error struct {
	Path, Reason string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "cloud config: " + e.Reason
	}
	return "cloud config: " + e.Path + ": " + e.Reason
}

func bad(path, format string, a ...any) error {
	return &Error{Path: path, Reason: fmt.Sprintf(format, a...)}
}

// Parse reads a cloud config in YAML (or JSON, which YAML reads) and
// checks it whole: IPs parse, a machine is in one zone only, names are
// bounded, a key is a path, and an unknown key is refused by name.
func Parse(data []byte) (contract.CloudConfig, error) {
	var cc contract.CloudConfig
	if len(data) > MaxBytes {
		return cc, bad("", "%d bytes; at most %d", len(data), MaxBytes)
	}
	var doc any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cc, bad("", "empty: want home, ssh, azs and disks")
		}
		return cc, bad("", "not YAML or JSON: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return cc, bad("", "holds more than one YAML document")
	}
	root, err := object(doc, "", "home", "ssh", "azs", "disks")
	if err != nil {
		return cc, err
	}
	if cc.Home, err = ipv4(root["home"], "home"); err != nil {
		return cc, err
	}
	if root["ssh"] != nil {
		if cc.SSH, err = login(root["ssh"], "ssh", "user", "key"); err != nil {
			return cc, err
		}
	}
	if cc.AZs, err = zones(root["azs"]); err != nil {
		return cc, err
	}
	if cc.Disks, err = disks(root["disks"], cc); err != nil {
		return cc, err
	}
	return cc, nil
}

// object reads a map whose keys are all known.
func object(v any, path string, known ...string) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, bad(path, "want a map of %s, found %s", strings.Join(known, ", "), kind(v))
	}
	var unknown []string
	for k := range m {
		if !contains(known, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, bad(join(path, unknown[0]), "unknown key (known: %s)", strings.Join(known, ", "))
	}
	return m, nil
}

func login(v any, path string, known ...string) (contract.CloudSSH, error) {
	var out contract.CloudSSH
	m, err := object(v, path, known...)
	if err != nil {
		return out, err
	}
	if out.User, err = str(m["user"], join(path, "user")); err != nil {
		return out, err
	}
	if out.User != "" && !userName.MatchString(out.User) {
		return out, bad(join(path, "user"), "not a user name (lowercase letters, digits, _ and -, at most 32)")
	}
	if out.Key, err = str(m["key"], join(path, "key")); err != nil {
		return out, err
	}
	if k := out.Key; k != "" && (!strings.HasPrefix(k, "/") || len(k) > maxPath || strings.ContainsAny(k, "\n\x00")) {
		return out, bad(join(path, "key"), "the path of a private key on the engine's machine (absolute, one line, at most %d bytes): the cloud config holds no key itself", maxPath)
	}
	return out, nil
}

func zones(v any) ([]contract.CloudAZ, error) {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil, bad("azs", "want a list of {name, machines}, at least one")
	}
	if len(list) > maxAZs {
		return nil, bad("azs", "%d zones; at most %d", len(list), maxAZs)
	}
	var out []contract.CloudAZ
	where := map[string]string{} // machine → its zone
	total := 0
	for i, x := range list {
		path := fmt.Sprintf("azs[%d]", i)
		m, err := object(x, path, "name", "machines")
		if err != nil {
			return nil, err
		}
		az := contract.CloudAZ{}
		if az.Name, err = str(m["name"], path+".name"); err != nil {
			return nil, err
		}
		if !azName.MatchString(az.Name) {
			return nil, bad(path+".name", "%q is not a zone name (letters, digits, _ . -, at most 63)", contract.Clip(az.Name))
		}
		for _, prev := range out {
			if prev.Name == az.Name {
				return nil, bad(path+".name", "zone %s is listed twice", az.Name)
			}
		}
		ms, _ := m["machines"].([]any)
		if total += len(ms); total > maxMachines {
			return nil, bad(path+".machines", "more than %d machines", maxMachines)
		}
		for j, mx := range ms {
			mp := fmt.Sprintf("%s.machines[%d]", path, j)
			mc, err := machine(mx, mp)
			if err != nil {
				return nil, err
			}
			if other, dup := where[mc.IP]; dup {
				return nil, bad(mp, "%s is in zone %s too: a machine is in one zone", mc.IP, other)
			}
			where[mc.IP] = az.Name
			az.Machines = append(az.Machines, mc)
		}
		if m["machines"] != nil && ms == nil {
			return nil, bad(path+".machines", "want a list of IPs or {ip, user, key}")
		}
		out = append(out, az)
	}
	return out, nil
}

// machine reads an IP, or {ip, user, key}.
func machine(v any, path string) (contract.CloudMachine, error) {
	if _, isMap := v.(map[string]any); !isMap {
		ip, err := ipv4(v, path)
		return contract.CloudMachine{IP: ip}, err
	}
	m, err := object(v, path, "ip", "user", "key")
	if err != nil {
		return contract.CloudMachine{}, err
	}
	ip, err := ipv4(m["ip"], path+".ip")
	if err != nil {
		return contract.CloudMachine{}, err
	}
	l, err := login(map[string]any{"user": m["user"], "key": m["key"]}, path, "user", "key")
	return contract.CloudMachine{IP: ip, User: l.User, Key: l.Key}, err
}

func disks(v any, cc contract.CloudConfig) (map[string]string, error) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, bad("disks", "want a map of machine IP to its device, found %s", kind(v))
	}
	out := map[string]string{}
	for k, x := range m {
		path := "disks." + contract.Clip(k)
		ip, err := ipv4(k, path)
		if err != nil {
			return nil, err
		}
		if AZOf(cc, ip) == "" {
			return nil, bad(path, "%s is in no zone's machines", ip)
		}
		dev, err := str(x, path)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(dev, "/dev/") || len(dev) > 256 || strings.ContainsAny(dev, " \n\x00") {
			return nil, bad(path, "want a device path, /dev/…")
		}
		out[ip] = dev
	}
	return out, nil
}

// ipv4 reads a machine's IPv4 address.
func ipv4(v any, path string) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", bad(path, "want an IPv4 address, found %s", kind(v))
	}
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return "", bad(path, "%q is not a machine's IPv4 address", contract.Clip(s))
	}
	return a.String(), nil
}

func str(v any, path string) (string, error) {
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", bad(path, "want a string, found %s", kind(v))
	}
	return s, nil
}

// AZOf is the zone of a machine, or "" when it is in none.
func AZOf(cc contract.CloudConfig, ip string) string {
	for _, az := range cc.AZs {
		for _, m := range az.Machines {
			if m.IP == ip {
				return az.Name
			}
		}
	}
	return ""
}

// Machine finds a machine by IP, with the cloud config's login filled in
// where it says none of its own.
func Machine(cc contract.CloudConfig, ip string) (contract.CloudMachine, bool) {
	for _, az := range cc.AZs {
		for _, m := range az.Machines {
			if m.IP == ip {
				if m.User == "" {
					m.User = cc.SSH.User
				}
				if m.Key == "" {
					m.Key = cc.SSH.Key
				}
				return m, true
			}
		}
	}
	return contract.CloudMachine{}, false
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a map"
	case map[any]any:
		return "a map whose keys are not all strings"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, float64:
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}

func join(path, k string) string {
	k = contract.Clip(k)
	if path == "" {
		return k
	}
	return path + "." + k
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
