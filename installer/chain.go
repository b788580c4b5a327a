package installer

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeexec"
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
// that wrote them. de_file writes a step's file beside the one it replaces
// (or in place); de_files, after the step's last de_file, checks each
// against its SHA-256 (which fixes its size) and moves it into place,
// leaving alone a file the node has already. de_run runs a step
// (runChainStep).
//
// A file of text (no NUL byte) comes as de_file's sixth argument, in
// single quotes, and the shell's printf writes it; any other comes as
// base64 on stdin. One sha256sum hashes every file of the step and every
// file they replace, where each file started its own: a first deploy
// sends a handful of files to every node at once, a release job a file a
// template, and on a busy node each process costs 4–40 ms of CPU (where
// sha256sum cannot read a file the node has, each file is hashed apart,
// as before). A file the node does not have is written in place, with no
// mv: nothing on the node reads a file that was not there (a reader that
// lists a directory sees the temporary file all the same), and one that
// does not check out is removed, as the temporary file is, with every
// file of the step not checked yet. The file is created with its mode
// (umask, set back to the shell's own as /proc tells it, or in a subshell
// where /proc does not) unless the mode needs execute or special bits
// (then chmod). stat runs only for what is rare: a file the node has
// already (its mode counts too), a transfer that does not check out (its
// size goes in the error).
var chainFuncs = reapFuncs + `de_mark() { printf '%s %s\n' "$DE_N" "$*"; printf '%s %s\n' "$DE_N" "$*" >&2; }
de_fk=() de_fi=() de_fp=() de_fm=() de_fs=() de_ft=() de_fu=()
de_file() {
  local k=$1 i=$2 p=$3 m=$4 sum=$5 t=$3.de-tmp u=077 a b=
  [ -d "${p%/*}/" ] || mkdir -p "${p%/*}/"
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then t=$p; fi
  [ ! -e "$t" ] && [ ! -L "$t" ] || rm -f "$t"
  case $m in [0246][0246][0246]) printf -v u %03o $(( 0666 & ~8#$m )) ;; esac
  if [ $# -ge 6 ]; then
    [ -n "${de_um+set}" ] || { de_um=; while read -r a b; do [ "$a" != Umask: ] || de_um=$b; done < /proc/$BASHPID/status; } 2>/dev/null
    if [ -n "$de_um" ]; then umask "$u"; printf '%s' "$6" > "$t"; a=$?; umask "$de_um"; else ( umask "$u"; printf '%s' "$6" > "$t" ); a=$?; fi
  else
    ( umask "$u"; exec base64 -d > "$t" ); a=$?
  fi
  [ $a -eq 0 ] || { rm -f "$t" "${de_ft[@]}"; de_mark badfile "$k" "$p" unreadable; exit 0; }
  de_fk+=("$k") de_fi+=("$i") de_fp+=("$p") de_fm+=("$m") de_fs+=("$sum") de_ft+=("$t") de_fu+=("$u")
}
de_files() {
  local j n=${#de_ft[@]} c=0 k i p m t a b l f=() h=() rc=0
  [ $n -gt 0 ] || return 0
  for ((j = 0; j < n; j++)); do f+=("${de_ft[j]}"); [ "${de_ft[j]}" = "${de_fp[j]}" ] || f+=("${de_fp[j]}"); done
  while read -r l _; do h+=("$l"); done < <(exec sha256sum -- "${f[@]}" 2>/dev/null)
  for ((j = 0; j < n; j++)); do
    k=${de_fk[j]} i=${de_fi[j]} p=${de_fp[j]} m=${de_fm[j]} t=${de_ft[j]} a= b=
    if [ ${#h[@]} -eq ${#f[@]} ]; then
      a=${h[c]}; c=$((c+1))
      [ "$t" = "$p" ] || { b=${h[c]}; c=$((c+1)); }
    elif [ "$t" = "$p" ]; then read -r a _ < <(exec sha256sum -- "$t")
    else { read -r a _; read -r b _; } < <(exec sha256sum -- "$t" "$p" 2>/dev/null)
    fi
    a=${a#\\} b=${b#\\}
    if [ "$a" != "${de_fs[j]}" ]; then b=$(exec stat -c %s -- "$t"); rm -f "$t" "${de_ft[@]:j+1}"; de_mark badfile "$k" "$p" "$b" "$a"; exit 0; fi
    if [ "$b" = "${de_fs[j]}" ] && [ ! -L "$p" ] && [ "$(exec stat -c %a -- "$p")" = "$m" ]; then rm -f "$t"; continue; fi
    { [ "${de_fu[j]}" != 077 ] || chmod "$m" "$t"; } && { [ "$t" = "$p" ] || mv -f "$t" "$p"; } || { rc=1; continue; }
    de_mark sent "$k" "$i"
  done
  de_fk=() de_fi=() de_fp=() de_fm=() de_fs=() de_ft=() de_fu=()
  return $rc
}
` + runChainStep

// runChainStep defines de_noop KEY HASH DEPLOYMENT [FD K], a step whose
// script does nothing (noop): its marker written under its lock, its
// status in de_rc; and de_run KEY HASH DEPLOYMENT SECS [FD K], which runs the
// step whose prelude and script are in de_s and leaves its status in
// de_rc, as stepCommand runs a step alone, with no process of its own
// but the step's shell: a process group of its own (the chain's shell
// starts it with job control on), in the step's cgroup, under the step's
// lock, its run recorded; its output goes to the chain's one pair of tee.
// Its deadline is kept by the chain's shell, which waits on a pipe (fd 6)
// that only the step's shell holds open for writing (fd 7): at SECS it
// sends TERM to the step's process group, then KILL 5 s later, and gives
// the statuses timeout(1) gives (124, or 137 when it took KILL). FD is
// the chain's descriptor on the step's lock file and K the step's place
// in the chain (preLock): de_lock takes the lock only where the chain's
// perl could not.
var runChainStep = `de_run() {
  DE_UNTIL=$(( ${EPOCHSECONDS:-$(date +%s)} + $4 ))
  exec 7>/proc/self/fd/6
  set -m
  ( set +m; exec 6<&- 8>&-; de_step "$1" "$2" "$3" "$5" "$6" ) &
  set +m
  de_pg=$!
  exec 7>&-
  read -r -t "$4" -u 6 _; de_rc=$?
  if [ $de_rc -gt 128 ]; then
    kill -TERM -- -$de_pg 2>/dev/null; de_rc=124
    read -r -t 5 -u 6 _; [ $? -le 128 ] || { kill -KILL -- -$de_pg 2>/dev/null; de_rc=137; }
    wait $de_pg
  else
    wait $de_pg; de_rc=$?
  fi
  de_end "$1" $de_pg $de_rc
}
de_noop() {
  de_rc=0
  if [ -n "$4" ]; then exec 9>&"$4"; else exec 9>>` + nodefs.Run + `/$1.lock; fi
  if de_lock "$5"; then
    [ -d ` + nodefs.Applied + ` ] || mkdir -p ` + nodefs.Applied + `
    printf '%s %s\n' "$2" "$3" > ` + nodefs.Applied + `/$1 || de_rc=1
  else
    de_rc=` + strconv.Itoa(exitLocked) + `
  fi
  exec 9>&-
}
de_lock() { [ -n "$1" ] && [ "${de_held:$1:1}" = 1 ] || flock -w 60 9; }
de_step() {
  read -r _ _ _ _ pg _ < /proc/$BASHPID/stat
  ` + joinRun("$1", "$BASHPID") + `
  if [ -n "$4" ]; then exec 9>&"$4"; else exec 9>>` + nodefs.Run + `/$1.lock; fi
  for de_f in $de_lks; do exec {de_f}>&-; done
  de_lock "$5" || exit ` + strconv.Itoa(exitLocked) + `
  echo "$pg $2 $3 $DE_UNTIL" > ` + nodefs.Run + `/$1.pgid
  trap ": > ` + nodefs.Run + `/$1.pgid" EXIT
  # Nothing of the chain for the step's script: not the nonce, nor its helpers, nor its locks.
  unset -v DE_N DE_UNTIL de_held de_lks de_f de_fk de_fi de_fp de_fm de_fs de_ft de_fu; unset -f alive de_mark de_file de_files de_settle de_noop de_run de_step de_reap de_end de_lock
  eval "$de_s"
}
`

// chainSettle is settleScript as a function of the chain script (key and
// hash its arguments), which returns where the script exits: no process
// of its own when, as mostly, no earlier run left its process group.
var chainSettle = "de_settle() {\nlocal f pg hash until i\n" + strings.ReplaceAll(fmt.Sprintf(settleScript, "$1", `"$2"`), "exit ", "return ") + "}\n"

// chainable tells whether a step can travel in a chain script: its files
// are inline and small.
func chainable(s contract.Step) bool {
	if s.ReadBack != "" {
		return false
	}
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
	// The script itself holds every step's secrets and the nonce: the
	// steps, which the chain's shell forks, do not see it. The chain's
	// shell records its pid, so that a chain stopped from the engine starts
	// no further step (killChain).
	fmt.Fprintf(&b, "unset script\nDE_N=%[1]s\n%[2]s%[3]s[ -d %[4]s ] || mkdir -p %[4]s\necho $$ > %[5]s\ntrap 'rm -f %[5]s' EXIT\n", nonce, chainFuncs, chainSettle, nodefs.Run, chainPID(nonce))
	// One pair of tee for the whole chain, its control lines and its steps'
	// output alike, so that they stay in order: tee -p outlives a dropped
	// connection, so that a step whose engine died goes on to its end
	// instead of dying of SIGPIPE at its next line of output. fd 8 is the
	// session's own stdout, where the chain says it is alive before each
	// step: once the engine is gone, the chain's shell dies of SIGPIPE there
	// and begins no further step. fd 6 is the pipe de_run waits on.
	b.WriteString("exec 8>&1 1> >(exec tee -p /dev/null 8>&-) 2> >(exec tee -p /dev/null >&2 8>&-)\n")
	b.WriteString(kit.ShellPipe("6"))
	preLock(&b, runs)
	eof := "DE_EOF_" + nonce
	for k, r := range runs {
		s := r.s
		key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
		// An earlier run of the step may still be alive on the node: it is
		// waited for or killed first, as runSent does.
		fmt.Fprintf(&b, "# %s\nprintf '%%s alive\\n' \"$DE_N\" >&8\nde_mark begin %d\nde_settle %s %s || { de_mark settle %d; exit 0; }\n", s.ID, k, key, s.Hash, k)
		b.WriteString(nodefs.ForgetUnlessHolds(s.Key, s.Holds))
		fmt.Fprintf(&b, "de_have=; [ ! -f %[1]s ] || read -r de_have < %[1]s\n", marker)
		fmt.Fprintf(&b, "if [ \"$de_have\" = %s ]; then de_mark done %d %s\n", kit.ShellQuote(s.Hash+" "+s.Deployment), k, contract.StateSucceeded)
		fmt.Fprintf(&b, "elif [ \"${de_have%%%% *}\" = %s ]; then de_mark done %d %s\nelse\n", kit.ShellQuote(s.Hash), k, contract.StateUnchanged)
		if s.Claim {
			fmt.Fprintf(&b, "de_o=; [ ! -f %[1]s ] || read -r de_o < %[1]s\nif [ -n \"$de_o\" ] && [ \"$de_o\" != %[2]s ]; then de_mark owner %[3]d \"$de_o\"; exit 0; fi\n",
				nodefs.Owner, kit.ShellQuote(s.Engine), k)
		}
		if len(s.Files) > 0 {
			// The node is about to leave the state its marker records.
			b.WriteString(nodefs.Unmark(s.Key) + "\n")
		}
		for fi, f := range s.Files {
			data, sum, err := inlineFile(f)
			if err != nil {
				return "", err
			}
			if bytes.IndexByte(data, 0) < 0 {
				fmt.Fprintf(&b, "de_file %d %d %s %s %s %s\n", k, fi, kit.ShellQuote(f.Path), fileMode(f), sum, kit.ShellQuote(string(data)))
				continue
			}
			fmt.Fprintf(&b, "de_file %d %d %s %s %s <<'%s'\n%s\n%s\n", k, fi, kit.ShellQuote(f.Path), fileMode(f), sum, eof,
				wrap76(base64.StdEncoding.EncodeToString(data)), eof)
		}
		if len(s.Files) > 0 {
			b.WriteString("de_files\n")
		}
		lock := fmt.Sprintf(`"$de_l%d" %d`, k, k)
		if k >= maxPreLocks {
			lock = ""
		}
		if noop(s) {
			fmt.Fprintf(&b, "de_noop %s %s %s %s\n", key, s.Hash, kit.ShellQuote(s.Deployment), lock)
		} else {
			fmt.Fprintf(&b, "de_s=%s\nde_run %s %s %s %d %s\n", kit.ShellQuote(withPrelude(pres[k], s)), key, s.Hash, kit.ShellQuote(s.Deployment), stepSecs(s)+5, lock)
		}
		fmt.Fprintf(&b, "de_mark exit %d $de_rc\n[ $de_rc -eq 0 ] || exit 0\nfi\n", k)
		if k < maxPreLocks {
			// Its lock is the step's shell's alone now, and goes with it.
			fmt.Fprintf(&b, "[ -z \"$de_l%[1]d\" ] || exec {de_l%[1]d}>&-\n", k)
		}
	}
	b.WriteString("de_mark end\n")
	return b.String(), nil
}

// maxPreLocks bounds the steps of a chain whose locks its shell takes at
// its start: each holds a descriptor until its step has run.
var maxPreLocks = 200

// preLock opens the lock file of each of runs' steps in the chain's shell
// (de_l0, de_l1, …) and takes every lock that is free at once, with one
// perl (perl-base is on every Debian machine), where each step ran a
// flock of its own: de_held says which ($de_held's k-th character is 1).
// A step whose lock was held (an earlier run of it still alive) waits for
// it with flock at its turn, as before, and so does every step where perl
// or an open fails. The chain closes its copy of a step's lock once the
// step has run, so that the lock goes with the step's shell; the step's
// shell closes the other steps' before its script runs.
func preLock(b *strings.Builder, runs []*stepRun) {
	n := min(len(runs), maxPreLocks)
	var args, fds []string
	for k := range n {
		fmt.Fprintf(b, "{ exec {de_l%[1]d}>>%[2]s/%[3]s.lock; } 2>/dev/null || de_l%[1]d=\n", k, nodefs.Run, nodefs.MarkerName(runs[k].s.Key))
		args = append(args, fmt.Sprintf(`"${de_l%d:--}"`, k))
		fds = append(fds, fmt.Sprintf("$de_l%d", k))
	}
	fmt.Fprintf(b, "de_lks=\"%s\"\nde_held=; ! command -v perl >/dev/null || de_held=$(exec perl -e %s %s 2>/dev/null)\n",
		strings.Join(fds, " "), kit.ShellQuote(`for (@ARGV) { my $f; print((/^\d+\z/ && open($f, ">&=", $_) && flock($f, 6)) ? 1 : 0) }`), strings.Join(args, " "))
}

// chainSpec is the chain of runs' steps as a node's agent runs it itself
// (nodeexec.Chain): what chainScript does, each step's shell work sent
// as the shell the script would run.
func chainSpec(runs []*stepRun, pres []string, nonce string) (*nodeexec.Chain, error) {
	ch := &nodeexec.Chain{Nonce: nonce, CgroupRoots: strings.Fields(cgroupRoots)}
	for k, r := range runs {
		s := r.s
		key := nodefs.MarkerName(s.Key)
		cs := nodeexec.ChainStep{Key: key, Hash: s.Hash, Deployment: s.Deployment, Holds: s.Holds, Claim: s.Claim, Engine: s.Engine,
			Settle: reapFuncs + fmt.Sprintf(settleScript, key, kit.ShellQuote(s.Hash)),
			Run:    agentStepRun(key, s.Hash, s.Deployment), Script: withPrelude(pres[k], s), Secs: stepSecs(s) + 5,
			Reap: reapFuncs + "de_reap " + key + ` "$1"` + "\n",
			Noop: noop(s)}
		for _, f := range s.Files {
			data, sum, err := inlineFile(f)
			if err != nil {
				return nil, err
			}
			mode, _ := strconv.ParseUint(fileMode(f), 8, 32)
			cs.Files = append(cs.Files, nodeexec.ChainFile{Path: f.Path, Mode: uint32(mode), SHA256: sum, Content: data})
		}
		ch.Steps = append(ch.Steps, cs)
	}
	return ch, ch.Check()
}

// inlineFile is a chained step's file as it travels: its checked path's
// content and SHA-256.
func inlineFile(f contract.StepFile) ([]byte, string, error) {
	if err := checkPath(f.Path); err != nil {
		return nil, "", err
	}
	open, _, sum, err := source(f)
	if err != nil {
		return nil, "", err
	}
	rd, err := open()
	if err != nil {
		return nil, "", err
	}
	data, err := io.ReadAll(rd)
	return data, sum, err
}

// noop tells whether a step's script does nothing: the chain writes its
// marker under its lock (after its files) and starts no shell for it.
func noop(s contract.Step) bool {
	return strings.TrimSpace(s.Script) == "true" && len(s.SecretEnv) == 0 && !s.Claim
}

// agentStepRun is a step's Run in a chain its agent runs: de_step's work
// once the step's lock is taken (the agent holds it as fd 9), its
// deadline in $DE_UNTIL and its script in $DE_S.
func agentStepRun(key, hash, deployment string) string {
	pgid := nodefs.Run + "/" + key + ".pgid"
	return `read -r _ _ _ _ pg _ < /proc/$$/stat; ` + joinRun(key, "$$") +
		`echo "$pg "` + kit.ShellQuote(hash+" "+deployment) + `" $DE_UNTIL" > ` + pgid + `; trap ": > ` + pgid + `" EXIT; ` +
		`de_s=$DE_S; unset -v DE_S DE_UNTIL; eval "$de_s"`
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
