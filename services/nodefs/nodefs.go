// Package nodefs is the contract of the engine's own files on a node
// (where each lives, what it holds), for every service that reads or
// writes them: the step markers (which step the node has applied, at which
// hash), the owner file (which engine manages the node), the run files of
// steps in flight.
package nodefs

import (
	"regexp"
	"strings"
)

// Paths on a node.
const (
	// State is where the engine keeps its own state on a node.
	State = "/var/lib/deployment-engine"
	// Applied holds one marker a step key: "<hash> <deployment>" of the
	// step that last succeeded under that key.
	Applied = State + "/applied"
	// Run holds the lock and process group of each step in flight.
	Run = State + "/run"
	// Owner holds the id of the engine that manages the node; Cluster the
	// name of that engine's cluster whose config holds it (written with
	// the owner; the engine keeps a machine to one cluster from its
	// stored configs, this file says which to whoever reads the node).
	Owner   = State + "/owner"
	Cluster = State + "/cluster"
	// AgentConfig and AgentPassword are the node agent's config and NATS
	// password.
	AgentConfig   = State + "/agent.json"
	AgentPassword = State + "/agent.pass"
	// StopFailed marks the components whose stop monit could not finish.
	StopFailed = State + "/stop-failed"
	// MonitVerbose is what monit -v -t printed when a step last checked
	// monit's config before a reload (root's alone): the agent reads its
	// process checks' pidfiles there while it is newer than the config,
	// rather than run monit again.
	MonitVerbose = State + "/monit-verbose"
)

// MonitHTTP is monit's HTTP interface on a node (the engine's monitrc puts
// it there) as bash's /dev/tcp names it: steps and the node check ask it
// with the shell's builtins rather than run monit's client.
const MonitHTTP = "127.0.0.1/2812"

// MonitPid is where monit keeps its daemon's pid: the engine's monitrc puts
// it there, and it is Debian's default (/var/run is /run).
const MonitPid = "/run/monit.pid"

var unsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

// MarkerName is the file name of step key's marker (and of its run
// files): the key with every byte a file name or a shell word could
// misread replaced by '_'.
func MarkerName(key string) string { return unsafe.ReplaceAllString(key, "_") }

// Marker is the path of step key's marker.
func Marker(key string) string { return Applied + "/" + MarkerName(key) }

// ForgetUnlessHolds is a shell command that removes step key's marker
// when holds, run quietly, fails; nothing when holds is empty.
func ForgetUnlessHolds(key, holds string) string {
	if holds == "" {
		return ""
	}
	return "if ! { " + holds + "; } >/dev/null 2>&1; then rm -f " + Marker(key) + "; fi\n"
}

// Unmark is a shell command, with no process of its own, that empties step
// key's marker: the node leaves the state the marker records. An empty
// marker reads as none wherever one is read (its first field is the hash),
// and an empty file costs less than the rm that removed it, which every
// step that ran started on every node.
func Unmark(key string) string { return "[ ! -s " + Marker(key) + " ] || : > " + Marker(key) }

// ClearMarkers is a shell command that forgets every step whose key starts
// with prefix, so that those steps run again.
func ClearMarkers(prefix string) string { return "rm -f " + Applied + "/" + MarkerName(prefix) + "*" }

// ReadOwner is a shell command that prints the node's owner, nothing when
// it has none.
const ReadOwner = "cat " + Owner + " 2>/dev/null || true"

// OwnedElsewhere tells whether owner, as a node says it, is an engine other
// than engine: such a node is not this engine's to change.
func OwnedElsewhere(owner, engine string) bool {
	o := strings.TrimSpace(owner)
	return o != "" && o != engine
}

// Fetch defines the shell function de_fetch URL DEST [SECONDS]: it fetches
// URL into DEST the way apt would (apt-helper, so the node's apt proxy and
// settings apply; curl where apt is missing), giving up after SECONDS
// (default 10). On failure it sets de_err to the reason, on one line, and
// returns 1. apt-get update only warns when a source is unreachable;
// this is how a node step finds out.
const Fetch = `de_fetch() {
  de_err=
  if [ -x /usr/lib/apt/apt-helper ]; then
    de_err=$(timeout "${3:-10}" /usr/lib/apt/apt-helper -o APT::Sandbox::User=root -o Acquire::Retries=0 -o Acquire::http::Timeout=5 download-file "$1" "$2" 2>&1) && return 0
    de_err=$(printf '%s\n' "$de_err" | sed -n 's/^E: Failed to fetch [^ ]* *//p' | head -n1)
  elif command -v curl >/dev/null 2>&1; then
    de_err=$(timeout "${3:-10}" curl -fsS --connect-timeout 5 -o "$2" "$1" 2>&1) && return 0
    de_err=$(printf '%s\n' "$de_err" | head -n1)
  else
    de_err="neither apt-helper nor curl on the node"
  fi
  de_err=${de_err:-"no answer within ${3:-10}s"}
  return 1
}
`

// MarkersScript prints whether the node has monit, and each step marker
// with its hash, read with the shell's builtins: every plan reads every
// node's markers, and a process for each cost more than the read. A node's
// agent answers it in its own process (nodeexec.ReadMarkers).
const MarkersScript = `if command -v monit >/dev/null 2>&1; then echo "monit yes"; else echo "monit no"; fi
for f in ` + Applied + `/*; do
  [ -f "$f" ] || continue
  de_h=; read -r de_h _ < "$f" || :
  printf 'marker %s %s\n' "${f##*/}" "$de_h"
done
`
