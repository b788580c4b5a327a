package contract

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/nodefs"
)

// KindCopy is the kind of a deployment that puts an operator's file on
// nodes (FleetCopy).
const KindCopy = "copy"

// Bounds of a FleetCopy.
const (
	// MaxCopyBytes bounds the file, in bytes.
	MaxCopyBytes = 4 << 20
	// MaxCopyPath bounds its path on the nodes, in bytes.
	MaxCopyPath = 1024
	// CopyTimeout is each node's deadline to take the file, in seconds.
	CopyTimeout = 300
)

// FleetCopy puts an operator's file on nodes (de.cmd.deploy.copy): on
// every node of the stored config with an instance of Component, or on the
// Nodes named (one of the two). It is a deployment of kind copy, one step
// a node, MaxInFlight nodes at a time (default 1); a node that fails does
// not stop the others. Each node takes Content through the installer's
// file transfer — its size and SHA-256 checked on the node, then moved
// into place at To with Mode (octal, default "0644") — and its step ends
// with the SHA-256 and size of the file the node then has, as its output.
// To is absolute and plain (no "..", no quote, no newline), and never
// under the engine's own state on the node. Content is at most 4 MiB,
// base64 in JSON.
//
// With From instead of To (and no content nor mode), it reads a file back
// from those nodes (copy --from): each node's step sends the file at From,
// at most 4 MiB, which the installer checks against the SHA-256 and size
// the node computed and keeps in the bus for an hour; the step's output is
// then that SHA-256 and size, as for To (ParseCopyOutput).
//
//	{"v": 1, "component": "web", "to": "/etc/motd", "content_base64": "aGVsbG8K", "mode": "0644",
//	 "max_in_flight": 2, "actor": "alice"}
type FleetCopy struct {
	V           int      `json:"v,omitempty"`
	Component   string   `json:"component,omitempty"`
	Nodes       []string `json:"nodes,omitempty"`
	To          string   `json:"to,omitempty"`
	From        string   `json:"from,omitempty"`
	Content     []byte   `json:"content_base64,omitempty"`
	Mode        string   `json:"mode,omitempty"`
	MaxInFlight string   `json:"max_in_flight,omitempty"`
	// Actor is who asked, as the API's token names them (the API sets it).
	Actor string `json:"actor,omitempty"`
}

// UnmarshalJSON takes max_in_flight as a number or a string.
func (x *FleetCopy) UnmarshalJSON(b []byte) error {
	type plain FleetCopy
	var raw struct {
		plain
		MaxInFlight json.RawMessage `json:"max_in_flight,omitempty"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*x = FleetCopy(raw.plain)
	m, err := flexString(raw.MaxInFlight)
	if err != nil {
		return fmt.Errorf("max_in_flight: %w", err)
	}
	x.MaxInFlight = m
	return nil
}

// InFlightOr is MaxInFlight, "1" when unset.
func (x FleetCopy) InFlightOr() string {
	if x.MaxInFlight == "" {
		return "1"
	}
	return x.MaxInFlight
}

// FileMode is Mode as a number, 0644 when unset; ok is false when Mode is
// not octal permission bits.
func (x FleetCopy) FileMode() (uint32, bool) {
	if x.Mode == "" {
		return 0o644, true
	}
	m, err := strconv.ParseUint(x.Mode, 8, 32)
	return uint32(m), err == nil && m > 0 && m <= 0o7777
}

// Problems names what is wrong with x on its own, field by field; whether
// its component and nodes are the config's is the planner's to say.
func (x FleetCopy) Problems() []Problem {
	var out []Problem
	switch {
	case x.From != "" && x.To != "":
		out = append(out, Problem{Path: "from", Reason: `give "to" or "from", not both`})
	case x.From != "":
		if why := CopyPathProblem(x.From); why != "" {
			out = append(out, Problem{Path: "from", Reason: Clip(fmt.Sprintf("%s: %q", why, x.From))})
		}
		if len(x.Content) > 0 || x.Mode != "" {
			out = append(out, Problem{Path: "content_base64", Reason: "a copy from the nodes takes no content and no mode"})
		}
		return append(out, fleetTargetProblems(x.Component, x.Nodes, x.InFlightOr())...)
	default:
		if why := CopyPathProblem(x.To); why != "" {
			out = append(out, Problem{Path: "to", Reason: Clip(fmt.Sprintf("%s: %q", why, x.To))})
		}
	}
	if len(x.Content) > MaxCopyBytes {
		out = append(out, Problem{Path: "content_base64", Reason: fmt.Sprintf("%d bytes, more than %d (4 MiB)", len(x.Content), MaxCopyBytes)})
	}
	if _, ok := x.FileMode(); !ok {
		out = append(out, Problem{Path: "mode", Reason: Clip(fmt.Sprintf("%q: want octal permission bits from 1 to 7777, as \"0644\"", x.Mode))})
	}
	return append(out, fleetTargetProblems(x.Component, x.Nodes, x.InFlightOr())...)
}

// CopyPathProblem says what is wrong with p as the path of a file copied to
// or from nodes, "" when nothing is: absolute, clean, no ".." (the
// installer writes no path holding one), no NUL, newline or single quote,
// a file (not "/"), at most MaxCopyPath bytes, and not the engine's own
// state on the node (nodefs.State), which a copy could forge.
func CopyPathProblem(p string) string {
	switch {
	case p == "":
		return "missing: give the file's absolute path on the nodes"
	case len(p) > MaxCopyPath:
		return fmt.Sprintf("%d bytes, more than %d", len(p), MaxCopyPath)
	case !path.IsAbs(p):
		return "not an absolute path"
	case strings.ContainsAny(p, "\x00\n\r'"):
		return "holds a NUL, a newline or a single quote"
	case strings.Contains(p, ".."):
		return `holds ".."`
	case path.Clean(p) != p || p == "/":
		return "not a clean path to a file (no \"//\", \"/./\" or trailing \"/\")"
	case p == nodefs.State || strings.HasPrefix(p, nodefs.State+"/"):
		return "under " + nodefs.State + ", the engine's own state on the node"
	}
	return ""
}

// FleetCopyStarted answers a FleetCopy: the deployment that runs it, the
// path (as the audit records it, the config's secrets taken out), the nodes
// in order, and the file's size and SHA-256, which each node's step
// reports back. A copy from the nodes has From instead of To, and no size
// or SHA-256: each node's step reports its own.
//
//	{"id": "d-20261124-223905-1a2b", "to": "/etc/motd", "nodes": ["10.0.0.2", "10.0.0.3"], "size": 6,
//	 "sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}
type FleetCopyStarted struct {
	ID     string   `json:"id"`
	To     string   `json:"to,omitempty"`
	From   string   `json:"from,omitempty"`
	Nodes  []string `json:"nodes"`
	Size   int      `json:"size"`
	SHA256 string   `json:"sha256,omitempty"`
}

// CopyReport is the script of a copy's step, run once the installer put
// the file at p: it prints the SHA-256 and size of the file the node has,
// as ParseCopyOutput reads them. p is a path CopyPathProblem takes (no
// single quote in it).
func CopyReport(p string) string {
	return "p='" + p + "'\nprintf '%s %s\\n' \"$(sha256sum < \"$p\" | cut -d' ' -f1)\" \"$(stat -c %s \"$p\")\"\n"
}

// ParseCopyOutput reads what a copy's step printed on its node, its
// StepStatus.Output: the SHA-256 (hex) and size of the file the node has.
// ok is false when the output is not that (a step that failed before).
func ParseCopyOutput(out string) (sum string, size int64, ok bool) {
	f := strings.Fields(out)
	if len(f) != 2 || len(f[0]) != 64 || strings.Trim(f[0], "0123456789abcdef") != "" {
		return "", 0, false
	}
	size, err := strconv.ParseInt(f[1], 10, 64)
	return f[0], size, err == nil && size >= 0
}

// CopyRead is the script of a copy from the nodes (Step.ReadBack), which
// the installer runs on its own: it prints the SHA-256 and size of the file
// at p on a line, then the file itself, as ParseCopyRead reads them. A
// missing file, or one over MaxCopyBytes, fails it (exit 2) naming which;
// the file is read no further than one byte past the bound, so a file that
// grows meanwhile is caught and never read whole. p is a path
// CopyPathProblem takes.
func CopyRead(p string) string {
	return fmt.Sprintf(`p='%[1]s'
[ -f "$p" ] || { echo "no file at $p" >&2; exit 2; }
n=$(stat -c %%s "$p") || exit 2
[ "$n" -le %[2]d ] || { echo "$p is $n bytes, more than %[2]d (4 MiB)" >&2; exit 2; }
printf '%%s %%s\n' "$(sha256sum < "$p" | cut -d' ' -f1)" "$n"
exec head -c %[3]d "$p"
`, p, MaxCopyBytes, MaxCopyBytes+1)
}

// ParseCopyRead reads what CopyRead printed: the file, with the SHA-256
// (hex) and size the node computed, or why it is not that: a first line
// that is not a checksum and size, a size over MaxCopyBytes, or content
// that does not match them (the file changed while it was read).
func ParseCopyRead(out []byte) (content []byte, sum string, err error) {
	head, rest, ok := bytes.Cut(out, []byte("\n"))
	if !ok {
		return nil, "", errors.New("the node printed no checksum and size")
	}
	sum, size, ok := ParseCopyOutput(string(head))
	switch {
	case !ok:
		return nil, "", fmt.Errorf("the node printed %q, not a checksum and size", Clip(string(head)))
	case size > MaxCopyBytes || len(rest) > MaxCopyBytes:
		return nil, "", fmt.Errorf("more than %d bytes (4 MiB)", MaxCopyBytes)
	case int64(len(rest)) != size:
		return nil, "", fmt.Errorf("read %d bytes, the node counted %d: the file changed while it was read", len(rest), size)
	}
	got := sha256.Sum256(rest)
	if hex.EncodeToString(got[:]) != sum {
		return nil, "", errors.New("the content read does not match the node's SHA-256: the file changed while it was read")
	}
	return rest, sum, nil
}
