package monit

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/nodefs"
)

// MarkDir is where a node keeps, per monit process, the words of a stop
// that failed: status says why a process still runs, whoever asks.
const MarkDir = nodefs.StopFailed

// Deadlines of the engine's monit actions: monit's own stop and start
// timeouts are 30 s each, and it runs one action at a time.
const (
	StopWait    = 60 * time.Second
	RestartWait = 90 * time.Second
)

// Wait is how long an action may take by default.
func Wait(action string) time.Duration {
	if action == "restart" {
		return RestartWait
	}
	return StopWait
}

// ControlScript runs `monit stop|restart` and waits for the outcome on the
// node, because monit answers at once and acts later: a stop is done when
// monit no longer supervises the process and the process, its children and
// the ports they listened on are gone; a restart when monit supervises a new
// process of it. A failure says monit's own words (from its log) and, for a
// stop, is noted in MarkDir. Arguments: $1 stop|restart, $2 the monit
// process name, $3 seconds to wait, $4 the mark directory. $MONIT, when
// set, is the monit command line. The last line is "ok: ..." (exit 0) or
// "failed: ..." (exit 1).
const ControlScript = `set -u
act=$1 svc=$2 limit=$3 marks=$4
m() { ${MONIT:-monit} "$@"; }
section() { m status 2>&1 | awk -v h="Process '$svc'" '$0 == h { on = 1; next } on && !/^ / { exit } on { print }'; }
get() { printf '%s\n' "$sec" | sed -n "s/^  $1  *//p" | head -n 1; }
alive() { s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1); [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]; }
tree() { ps -e -o pid= -o ppid= 2>/dev/null | awk -v r="$1" '{ pp[$1] = $2 } END { k[r] = 1; n = 1; while (n) { n = 0; for (c in pp) if (!(c in k) && (pp[c] in k)) { k[c] = 1; n = 1 } } for (c in k) print c }'; }
ports() { command -v ss >/dev/null 2>&1 || return 0; ss -Htlnp 2>/dev/null | awk -v pids=" $* " '{ s = $0; while (match(s, /pid=[0-9]+/)) { p = substr(s, RSTART + 4, RLENGTH - 4); s = substr(s, RSTART + RLENGTH); if (index(pids, " " p " ")) { print $4; break } } }' | sort -u; }
listening() { ss -Htln 2>/dev/null | awk '{ print $4 }' | grep -qxF "$1"; }
conf=$(m -v -t 2>/dev/null)
logf=$(printf '%s\n' "$conf" | sed -n 's/^ *Log file *= *//p' | head -n 1)
pidf=$(printf '%s\n' "$conf" | awk -v n="$svc" '/^Process Name *= / { on = ($NF == n) } on && /^ *Pid file *= / { print $NF; exit }')
sec=$(section)
if [ -z "$sec" ]; then echo "failed: monit has no process '$svc'"; exit 1; fi
pid0=$(get pid)
if [ -z "$pid0" ] && [ -n "$pidf" ]; then pid0=$({ tr -cd 0-9 < "$pidf"; } 2>/dev/null | head -c 10); fi
pids= open0=
if [ -n "$pid0" ] && alive "$pid0"; then pids=$(tree "$pid0" | tr '\n' ' '); open0=$(ports $pids | tr '\n' ' '); else pid0=; fi
# monit calls a stop of a process it gave up on done without running its
# stop program: take the process back first.
case $(get "monitoring status") in
[Nn]ot\ monitored*)
	if [ -n "$pid0" ]; then
		m monitor "$svc" >/dev/null 2>&1
		i=0; while [ $i -lt 20 ]; do sec=$(section); case $(get "monitoring status") in [Mm]onitored*) break ;; esac; sleep 0.5; i=$((i + 1)); done
	fi ;;
esac
off=0
if [ -f "$logf" ]; then off=$(wc -c < "$logf"); fi
if ! out=$(m "$act" "$svc" 2>&1); then echo "failed: monit $act $svc: $out"; exit 1; fi
start=$(date +%s) quiet=
while :; do
	now=$(date +%s)
	sec=$(section); st=$(get status); mon=$(get "monitoring status"); pid=$(get pid)
	words=
	if [ -f "$logf" ]; then words=$(tail -c +$((off + 1)) "$logf" 2>/dev/null | grep -F "'$svc' " | grep -E "failed to|timed out|could not" | tail -n 1 | sed 's/^\[[^]]*\] *[a-z]* *: *//'); fi
	case $st in *pending*) pending=1 ;; *) pending= ;; esac
	case $mon in [Nn]ot\ monitored*) unmon=1 ;; *) unmon= ;; esac
	if [ "$act" = stop ]; then
		live= open=
		for p in $pids; do if alive "$p"; then live="$live $p"; fi; done
		for a in $open0; do if listening "$a"; then open="$open $a"; fi; done
		if [ -n "$unmon" ] && [ -z "$pending" ]; then
			if [ -z "$live$open" ]; then rm -f "$marks/$svc"; echo "ok: $svc stopped"; exit 0; fi
			quiet=${quiet:-$now}
			if [ -n "$words" ] || [ $((now - quiet)) -ge 5 ]; then
				msg="${words:-monit called the stop done}; still running:${live:+ process$live}${open:+, listening on$open}"
				mkdir -p "$marks" && printf '%s\n' "$msg" > "$marks/$svc"
				echo "failed: $msg"; exit 1
			fi
		fi
	else
		case $st in OK | [Rr]unning) up=1 ;; *) up= ;; esac
		if [ -n "$up" ] && [ -z "$unmon" ] && [ -n "$pid" ] && [ "$pid" != "$pid0" ] && alive "$pid"; then
			rm -f "$marks/$svc"; echo "ok: $svc runs as process $pid"; exit 0
		fi
		if [ -n "$words" ]; then echo "failed: $words"; exit 1; fi
		if [ -n "$unmon" ] && [ -z "$pending" ]; then
			quiet=${quiet:-$now}
			if [ $((now - quiet)) -ge 5 ]; then echo "failed: monit gave the $act of $svc up: $st"; exit 1; fi
		fi
	fi
	if [ $((now - start)) -ge "$limit" ]; then echo "failed: monit did not finish the $act of $svc within ${limit}s (monit says: ${st:-nothing})"; exit 1; fi
	sleep 0.5
done
`

// ControlArgs are ControlScript's arguments for an action.
func ControlArgs(action, process string, wait time.Duration, markDir string) []string {
	return []string{action, process, strconv.Itoa(max(int(wait/time.Second), 1)), markDir}
}

// Outcome reads ControlScript's output: "" when the action is done, else
// the reason it is not (monit's words where monit gave them).
func Outcome(out string, exitCode int) string {
	last := ""
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			last = l
		}
	}
	switch {
	case exitCode == 0 && strings.HasPrefix(last, "ok: "):
		return ""
	case strings.HasPrefix(last, "failed: "):
		return strings.TrimPrefix(last, "failed: ")
	case last == "":
		return fmt.Sprintf("the control script exited %d without a word", exitCode)
	}
	return fmt.Sprintf("the control script exited %d: %s", exitCode, last)
}

// ProbeScript finds, on a node, the processes monit knows by pidfile that
// run although monit may not supervise them, and the stops that failed:
// lines "alive NAME PID" and "stopfailed NAME WORDS". $1 is the mark
// directory; $MONIT, when set, the monit command line.
const ProbeScript = `${MONIT:-monit} -v -t 2>/dev/null | awk '/^Process Name *= / { n = $NF } /^ *Pid file *= / { print n, $NF }' | while read -r n f; do
	p=$({ tr -cd 0-9 < "$f"; } 2>/dev/null | head -c 10)
	[ -n "$p" ] || continue
	s=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f1)
	if [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]; then echo "alive $n $p"; fi
done
for f in "$1"/*; do if [ -f "$f" ]; then printf 'stopfailed %s %s\n' "${f##*/}" "$(head -c 400 "$f" | tr '\n' ' ')"; fi; done
true
`

// Unsupervised is a process that runs whatever monit says of it.
type Unsupervised struct {
	PID        int
	StopFailed string // the words of the stop that failed, if one did
}

// ParseProbe reads ProbeScript's output: the processes alive, by monit
// name. A stop-failed note of a process that no longer runs is dropped.
func ParseProbe(out string) (map[string]Unsupervised, error) {
	alive := map[string]Unsupervised{}
	failed := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 0, 4096), maxInput)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		kind, rest, _ := strings.Cut(line, " ")
		name, val, _ := strings.Cut(rest, " ")
		if name == "" {
			return nil, fmt.Errorf("probe: cannot read line %q", line)
		}
		switch kind {
		case "alive":
			pid, err := strconv.Atoi(val)
			if err != nil || pid <= 0 {
				return nil, fmt.Errorf("probe: bad pid in %q", line)
			}
			alive[name] = Unsupervised{PID: pid}
		case "stopfailed":
			failed[name] = strings.TrimSpace(val)
		default:
			return nil, fmt.Errorf("probe: cannot read line %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("probe: %w", err)
	}
	for name, u := range alive {
		u.StopFailed = failed[name]
		alive[name] = u
	}
	return alive, nil
}

// Reason says why a process counts as running though monit does not say so.
func (u Unsupervised) Reason(monitWord string) string {
	if u.StopFailed != "" {
		return "stop failed: " + u.StopFailed
	}
	return fmt.Sprintf("monit does not supervise it (%s), yet its process %d runs", monitWord, u.PID)
}
