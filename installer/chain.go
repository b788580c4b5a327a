package installer

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// A chain is a node's consecutive steps that nothing between them needs
// the engine for: they travel in one SSH session, as one script that runs
// them in order (a step with none chained is a chain of one). Each step
// keeps what it would have on its own: the settling of an earlier run, its
// marker on the node (written when, and only when, its script succeeds),
// the owner check of a claim, its files (inline, checksummed), its lock,
// deadline and process group, its events and its log lines. A chain that
// stops half-way resumes at the first step without a marker. The script
// tells the installer where each step begins and ends with control lines
// that carry a nonce no step can know.

// maxInline bounds the inline files a step carries in a chain script;
// a step with more, or with files from this machine, runs apart (sent.go).
const maxInline = 1 << 20

// chainFuncs are the chain script's helpers. de_mark writes a control line
// on both streams, so that each stream's lines are attributed to the step
// that wrote them. de_file installs a file from base64 on stdin unless the
// node has it already, checking its size and SHA-256 before it moves it
// into place.
const chainFuncs = reapFuncs + `de_mark() { printf '%s %s\n' "$DE_N" "$*"; printf '%s %s\n' "$DE_N" "$*" >&2; }
de_file() {
  k=$1 i=$2 p=$3 m=$4 sum=$5 size=$6
  if [ -f "$p" ] && [ "$(sha256sum < "$p" | cut -d' ' -f1) $(stat -c %a "$p")" = "$sum $m" ]; then cat >/dev/null; return 0; fi
  mkdir -p "$(dirname "$p")"
  ( umask 077; base64 -d > "$p.de-tmp" ) || { de_mark badfile "$k" "$p" unreadable; exit 0; }
  got="$(stat -c %s "$p.de-tmp") $(sha256sum < "$p.de-tmp" | cut -d' ' -f1)"
  if [ "$got" != "$size $sum" ]; then rm -f "$p.de-tmp"; de_mark badfile "$k" "$p" $got; exit 0; fi
  chmod "$m" "$p.de-tmp" && mv -f "$p.de-tmp" "$p" && de_mark sent "$k" "$i"
}
`

// chainStepWrapper is stepCommand as the chain's shell runs it,
// with the step's deadline taken as it begins; the chain made the run
// directory once, and the step's script is read without a process of its
// own. chainScript launches it and waits for it as launch does.
var chainStepWrapper = strings.NewReplacer(
	"setsid -w timeout", "DE_UNTIL=$(( ${EPOCHSECONDS:-$(date +%%s)} + %[1]d )) setsid -w timeout",
	"%[5]d", "$DE_UNTIL",
	"script=$(cat);", `IFS= read -r -d "" script;`,
).Replace(stepCommand)

// chainSettle is settleScript as a function of the chain script (key and
// hash its arguments), which returns where the script exits: no process
// of its own when, as mostly, no earlier run left its process group.
var chainSettle = "de_settle() {\n" + strings.ReplaceAll(fmt.Sprintf(settleScript, "$1", `"$2"`), "exit ", "return ") + "}\n"

// chainable tells whether a step can travel in a chain script: its files
// are inline and small.
func chainable(s contract.Step) bool {
	size := 0
	for _, f := range s.Files {
		if f.LocalPath != "" {
			return false
		}
		size += len(f.Content)
	}
	return size <= maxInline
}

// chainScript is the one script that runs runs' steps in order on the
// node; pres are their preludes (stepRun.prelude).
func chainScript(runs []*stepRun, pres []string, nonce string) (string, error) {
	var b strings.Builder
	// The chain's shell records its pid, so that a chain stopped from the
	// engine starts no further step (killChain).
	fmt.Fprintf(&b, "DE_N=%[1]s\n%[2]s%[3]smkdir -p %[4]s\necho $$ > %[5]s\ntrap 'rm -f %[5]s' EXIT\n", nonce, chainFuncs, chainSettle, nodefs.Run, chainPID(nonce))
	eof := "DE_EOF_" + nonce
	for k, r := range runs {
		s := r.s
		key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
		// An earlier run of the step may still be alive on the node: it is
		// waited for or killed first, as runSent does.
		fmt.Fprintf(&b, "# %s\nde_mark begin %d\nde_settle %s %s || { de_mark settle %d; exit 0; }\n", s.ID, k, key, s.Hash, k)
		fmt.Fprintf(&b, "have=; [ -f %[1]s ] && read -r have < %[1]s\n", marker)
		fmt.Fprintf(&b, "if [ \"$have\" = %s ]; then de_mark done %d %s\n", kit.ShellQuote(s.Hash+" "+s.Deployment), k, contract.StateSucceeded)
		fmt.Fprintf(&b, "elif [ \"${have%%%% *}\" = %s ]; then de_mark done %d %s\nelse\n", kit.ShellQuote(s.Hash), k, contract.StateUnchanged)
		if s.Claim {
			fmt.Fprintf(&b, "o=$(%s)\nif [ -n \"$o\" ] && [ \"$o\" != %s ]; then de_mark owner %d \"$o\"; exit 0; fi\n",
				nodefs.ReadOwner, kit.ShellQuote(s.Engine), k)
		}
		if len(s.Files) > 0 {
			// The node is about to leave the state its marker records.
			fmt.Fprintf(&b, "rm -f %s\n", marker)
		}
		for fi, f := range s.Files {
			if err := checkPath(f.Path); err != nil {
				return "", err
			}
			open, size, sum, err := source(f)
			if err != nil {
				return "", err
			}
			rd, err := open()
			if err != nil {
				return "", err
			}
			data, err := io.ReadAll(rd)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "de_file %d %d %s %s %s %d <<'%s'\n%s\n%s\n", k, fi, kit.ShellQuote(f.Path), fileMode(f), sum, size, eof,
				wrap76(base64.StdEncoding.EncodeToString(data)), eof)
		}
		script := withPrelude(pres[k], s.Script)
		fmt.Fprintf(&b, chainStepWrapper, stepSecs(s)+5, key, s.Hash, s.Deployment, 0, exitLocked)
		fmt.Fprintf(&b, " <<'%[1]s' &\n%[2]s%[1]s\n%[4]s\nde_mark exit %[3]d $rc\n[ $rc -eq 0 ] || exit 0\nfi\n", eof, script, k, awaitRun(key))
	}
	b.WriteString("de_mark end\n")
	return b.String(), nil
}

// chainPID is where a chain's shell records its pid on the node.
func chainPID(nonce string) string { return nodefs.Run + "/chain-" + nonce + ".pid" }

// killChain stops a chain on the node: first its shell, so that it starts
// no further step, then the run of each of its steps from the one that
// runs, with all it started.
func killChain(c nodeConn, nonce, deployment string, keys []string) {
	var b strings.Builder
	b.WriteString(reapFuncs)
	fmt.Fprintf(&b, "read -r p < %[1]s 2>/dev/null && kill -KILL \"$p\" 2>/dev/null; rm -f %[1]s\n", chainPID(nonce))
	for _, k := range keys {
		b.WriteString(killRun(k, deployment))
	}
	b.WriteString("true\n")
	_ = runCmd(c, b.String())
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76])
		b.WriteByte('\n')
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func fileMode(f contract.StepFile) string {
	if f.Mode == 0 {
		return "644"
	}
	return fmt.Sprintf("%o", f.Mode&0o7777)
}

// checkPath refuses a file path that is not plain and absolute.
func checkPath(p string) error {
	if !path.IsAbs(p) || strings.Contains(p, "..") || strings.ContainsAny(p, "'\n\x00") {
		return permanent{fmt.Errorf("refusing to write %q: not a plain absolute path", p)}
	}
	return nil
}

func stepSecs(s contract.Step) int { return max(int(stepTimeout(s)/time.Second), 1) }

func newNonce() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "DE" + hex.EncodeToString(b)
}
