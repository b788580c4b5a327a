package bosh

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Reading a job's config/bpm.yml: bpm's config format, checked value by
// value, for the stand-in (bpm.go) to launch.

// BPMProcess is one process of a job's bpm config, checked.
type BPMProcess struct {
	Name       string
	Executable string
	Args       []string
	Env        map[string]string
	Workdir    string // "" for bpm's default, /var/vcap/jobs/JOB
	PreStart   string
	// Limits: "" when not given. Memory is kept as written (it is not
	// enforced); the others are decimal numbers.
	Memory, OpenFiles, Processes, CoreFileSize string
	EphemeralDisk, PersistentDisk              bool
	Privileged                                 bool
	ShutdownSignal                             string // TERM or INT
	// Notes name what the config asks and the stand-in does not give
	// (keys that only matter in a container): the process's stderr log
	// says them at each start.
	Notes []string
}

var (
	bpmNameRe   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	bpmEnvRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)
	bpmCapRe    = regexp.MustCompile(`^[A-Z][A-Z_]{0,63}$`)
	bpmMemoryRe = regexp.MustCompile(`^(?i)[0-9]{1,15}(\.[0-9]{1,6})?\s?([KMGTPE]i?B?|B)$`)
)

var (
	bpmTopKeys     = []string{"processes"}
	bpmProcessKeys = []string{"name", "executable", "args", "env", "workdir", "hooks", "capabilities", "limits",
		"ephemeral_disk", "persistent_disk", "additional_volumes", "unsafe", "shutdown_signal"}
	bpmHooksKeys  = []string{"pre_start"}
	bpmLimitsKeys = []string{"memory", "open_files", "processes", "core_file_size"}
	bpmUnsafeKeys = []string{"privileged", "unrestricted_volumes", "host_pid_namespace"}
	bpmVolumeKeys = []string{"path", "writable", "allow_executions", "mount_only", "shared"}
)

// ParseBPM reads a job's config/bpm.yml (bpm's config format) and checks
// every value: it is a template's output, which whoever wrote the release
// or the properties controls. Process names are plain names, unique;
// paths absolute and clean, with no control character; environment names
// are shell names; limits numbers; an unknown key is refused, named by
// its path (processes[0].limits.memroy).
func ParseBPM(data []byte) ([]BPMProcess, error) {
	if len(data) > bpmMaxConfig {
		return nil, fmt.Errorf("%d bytes, more than bpm's config may hold here (%d)", len(data), bpmMaxConfig)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("empty: bpm needs processes")
	}
	top, err := bpmMap(doc.Content[0], "", bpmTopKeys)
	if err != nil {
		return nil, err
	}
	list := bpmDeref(top["processes"])
	if list == nil || isNull(list) {
		return nil, errors.New("processes: missing: bpm needs at least one process")
	}
	if list.Kind != yaml.SequenceNode {
		return nil, errors.New("processes: must be a list")
	}
	if len(list.Content) == 0 {
		return nil, errors.New("processes: empty: bpm needs at least one process")
	}
	if len(list.Content) > bpmMaxProcesses {
		return nil, fmt.Errorf("processes: %d, more than %d", len(list.Content), bpmMaxProcesses)
	}
	var out []BPMProcess
	seen := map[string]bool{}
	for i, n := range list.Content {
		p, err := bpmProcess(n, fmt.Sprintf("processes[%d]", i))
		if err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("processes[%d].name: %q twice", i, p.Name)
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	return out, nil
}

func bpmProcess(n *yaml.Node, at string) (BPMProcess, error) {
	var p BPMProcess
	// The process is named in every error, an unknown key's too.
	if n := bpmDeref(n); n != nil && n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k, v := bpmDeref(n.Content[i]), bpmDeref(n.Content[i+1]); k.Value == "name" && v != nil && v.Kind == yaml.ScalarNode && bpmNameRe.MatchString(v.Value) {
				at = fmt.Sprintf("%s (%s)", at, v.Value)
				break
			}
		}
	}
	m, err := bpmMap(n, at, bpmProcessKeys)
	if err != nil {
		return p, err
	}
	if p.Name, err = bpmString(m["name"], at+".name"); err != nil {
		return p, err
	}
	if p.Name == "" {
		return p, fmt.Errorf("%s.name: missing", at)
	}
	if !bpmNameRe.MatchString(p.Name) {
		return p, fmt.Errorf("%s.name: %q is no plain name (letters, digits, _ . -, not first a dot; at most 128)", at, p.Name)
	}
	if p.Executable, err = bpmPath(m["executable"], at+".executable"); err != nil {
		return p, err
	}
	if p.Executable == "" {
		return p, fmt.Errorf("%s.executable: missing", at)
	}
	if p.Workdir, err = bpmPath(m["workdir"], at+".workdir"); err != nil {
		return p, err
	}
	if args := bpmDeref(m["args"]); args != nil && !isNull(args) {
		if args.Kind != yaml.SequenceNode {
			return p, fmt.Errorf("%s.args: must be a list", at)
		}
		for i, a := range args.Content {
			s, err := bpmString(a, fmt.Sprintf("%s.args[%d]", at, i))
			if err != nil {
				return p, err
			}
			p.Args = append(p.Args, s)
		}
	}
	if env := bpmDeref(m["env"]); env != nil && !isNull(env) {
		if env.Kind != yaml.MappingNode {
			return p, fmt.Errorf("%s.env: must be a map of NAME: value (bpm's format)", at)
		}
		p.Env = map[string]string{}
		for i := 0; i+1 < len(env.Content); i += 2 {
			k := bpmDeref(env.Content[i])
			if k.Kind != yaml.ScalarNode || !bpmEnvRe.MatchString(k.Value) {
				return p, fmt.Errorf("%s.env: %q is no environment variable name (letters, digits, _; not first a digit)", at, k.Value)
			}
			if _, dup := p.Env[k.Value]; dup {
				return p, fmt.Errorf("%s.env.%s: twice", at, k.Value)
			}
			v, err := bpmString(env.Content[i+1], at+".env."+k.Value)
			if err != nil {
				return p, err
			}
			p.Env[k.Value] = v
		}
	}
	if h := m["hooks"]; h != nil && !isNull(bpmDeref(h)) {
		hm, err := bpmMap(h, at+".hooks", bpmHooksKeys)
		if err != nil {
			return p, err
		}
		if p.PreStart, err = bpmPath(hm["pre_start"], at+".hooks.pre_start"); err != nil {
			return p, err
		}
	}
	if l := m["limits"]; l != nil && !isNull(bpmDeref(l)) {
		lm, err := bpmMap(l, at+".limits", bpmLimitsKeys)
		if err != nil {
			return p, err
		}
		if p.Memory, err = bpmString(lm["memory"], at+".limits.memory"); err != nil {
			return p, err
		}
		if p.Memory != "" && !bpmMemoryRe.MatchString(p.Memory) {
			return p, fmt.Errorf("%s.limits.memory: %q is no size (a number and a unit: 256M, 1G)", at, p.Memory)
		}
		if p.Memory != "" {
			p.Notes = append(p.Notes, "limits.memory "+p.Memory+" is not enforced: bpm's is a cgroup limit of its container, which the engine does not make")
		}
		for _, k := range []struct {
			key string
			to  *string
		}{{"open_files", &p.OpenFiles}, {"processes", &p.Processes}, {"core_file_size", &p.CoreFileSize}} {
			if *k.to, err = bpmCount(lm[k.key], at+".limits."+k.key); err != nil {
				return p, err
			}
		}
	}
	for _, k := range []struct {
		key string
		to  *bool
	}{{"ephemeral_disk", &p.EphemeralDisk}, {"persistent_disk", &p.PersistentDisk}} {
		if *k.to, err = bpmBool(m[k.key], at+"."+k.key); err != nil {
			return p, err
		}
	}
	if p.ShutdownSignal, err = bpmString(m["shutdown_signal"], at+".shutdown_signal"); err != nil {
		return p, err
	}
	switch p.ShutdownSignal {
	case "":
		p.ShutdownSignal = "TERM"
	case "TERM", "INT":
	default:
		return p, fmt.Errorf("%s.shutdown_signal: %q: TERM or INT (or none)", at, p.ShutdownSignal)
	}
	if c := bpmDeref(m["capabilities"]); c != nil && !isNull(c) {
		if c.Kind != yaml.SequenceNode {
			return p, fmt.Errorf("%s.capabilities: must be a list", at)
		}
		var caps []string
		for i, x := range c.Content {
			s, err := bpmString(x, fmt.Sprintf("%s.capabilities[%d]", at, i))
			if err != nil {
				return p, err
			}
			if !bpmCapRe.MatchString(s) {
				return p, fmt.Errorf("%s.capabilities[%d]: %q is no capability name (NET_BIND_SERVICE)", at, i, s)
			}
			caps = append(caps, s)
		}
		if len(caps) > 0 {
			p.Notes = append(p.Notes, "capabilities "+strings.Join(caps, ",")+" are not granted: the process runs as vcap with none (as root only with unsafe.privileged)")
		}
	}
	if n, err := bpmVolumes(m["additional_volumes"], at+".additional_volumes"); err != nil {
		return p, err
	} else if n > 0 {
		p.Notes = append(p.Notes, "additional_volumes are not mounted: without a container the process sees the machine's files as vcap may")
	}
	if u := m["unsafe"]; u != nil && !isNull(bpmDeref(u)) {
		um, err := bpmMap(u, at+".unsafe", bpmUnsafeKeys)
		if err != nil {
			return p, err
		}
		if p.Privileged, err = bpmBool(um["privileged"], at+".unsafe.privileged"); err != nil {
			return p, err
		}
		// Without a container every process shares the machine's PID
		// namespace: host_pid_namespace is what it gets anyway.
		if _, err := bpmBool(um["host_pid_namespace"], at+".unsafe.host_pid_namespace"); err != nil {
			return p, err
		}
		if n, err := bpmVolumes(um["unrestricted_volumes"], at+".unsafe.unrestricted_volumes"); err != nil {
			return p, err
		} else if n > 0 {
			p.Notes = append(p.Notes, "unsafe.unrestricted_volumes are not mounted: without a container the process sees the machine's files as its user may")
		}
	}
	return p, nil
}

// bpmVolumes checks a list of bpm volumes and counts them: the stand-in
// mounts none.
func bpmVolumes(n *yaml.Node, at string) (int, error) {
	n = bpmDeref(n)
	if n == nil || isNull(n) {
		return 0, nil
	}
	if n.Kind != yaml.SequenceNode {
		return 0, fmt.Errorf("%s: must be a list", at)
	}
	for i, v := range n.Content {
		vat := fmt.Sprintf("%s[%d]", at, i)
		vm, err := bpmMap(v, vat, bpmVolumeKeys)
		if err != nil {
			return 0, err
		}
		p, err := bpmString(vm["path"], vat+".path")
		if err != nil {
			return 0, err
		}
		if !strings.HasPrefix(p, "/") || bpmControl(p) {
			return 0, fmt.Errorf("%s.path: %q is no absolute path", vat, p)
		}
		for _, k := range bpmVolumeKeys[1:] {
			if _, err := bpmBool(vm[k], vat+"."+k); err != nil {
				return 0, err
			}
		}
	}
	return len(n.Content), nil
}

// bpmMap reads a mapping whose keys must be among known.
func bpmMap(n *yaml.Node, at string, known []string) (map[string]*yaml.Node, error) {
	n = bpmDeref(n)
	name := at
	if name == "" {
		name = "the config"
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: must be a map", name)
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := bpmDeref(n.Content[i])
		key := k.Value
		if k.Kind != yaml.ScalarNode || !slices.Contains(known, key) {
			return nil, fmt.Errorf("%s: unknown key %s (known: %s)", name, bpmShow(key), strings.Join(known, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("%s: key %s twice", name, bpmShow(key))
		}
		out[key] = n.Content[i+1]
	}
	return out, nil
}

// bpmString reads a scalar as bpm's YAML reads it into a string (a
// number as written): "" when absent or null. A NUL cannot go into an
// argument or the environment, and is refused.
func bpmString(n *yaml.Node, at string) (string, error) {
	n = bpmDeref(n)
	if n == nil || isNull(n) {
		return "", nil
	}
	if n.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("%s: must be a single value, not a list or a map", at)
	}
	if strings.ContainsRune(n.Value, 0) {
		return "", fmt.Errorf("%s: holds a NUL byte", at)
	}
	return n.Value, nil
}

// bpmPath reads an absolute, clean path with no control character.
func bpmPath(n *yaml.Node, at string) (string, error) {
	p, err := bpmString(n, at)
	if err != nil || p == "" {
		return p, err
	}
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || bpmControl(p) || len(p) > 4096 {
		return "", fmt.Errorf("%s: %q is no absolute, clean path", at, p)
	}
	return p, nil
}

// bpmCount reads a limit: a whole number, "" when absent.
func bpmCount(n *yaml.Node, at string) (string, error) {
	s, err := bpmString(n, at)
	if err != nil || s == "" {
		return s, err
	}
	v, err := strconv.ParseUint(s, 10, 63)
	if err != nil {
		return "", fmt.Errorf("%s: %q is no whole number", at, s)
	}
	return strconv.FormatUint(v, 10), nil
}

// bpmBool reads a boolean as YAML has them; false when absent.
func bpmBool(n *yaml.Node, at string) (bool, error) {
	n = bpmDeref(n)
	if n == nil || isNull(n) {
		return false, nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
		return false, fmt.Errorf("%s: must be true or false", at)
	}
	return b, nil
}

func bpmDeref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func bpmControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// bpmShow keeps a hostile key readable in an error: quoted, cut.
func bpmShow(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}
