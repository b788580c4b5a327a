package steps

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// The scripts below run as root with bash, fed on stdin. Each is safe to
// run again: a step that fails half-way is simply run once more.

// baseSteps are a node's own steps, before any component: take the node,
// create the user, point apt at the engine's mirror.
func baseSteps(in Builder, ip string) []*Step {
	var out []*Step
	prepare := fmt.Sprintf(`set -eu
install -d -m 700 %[1]s %[1]s/applied %[1]s/apt-backup
# monit starts at boot, and with it everything the engine installed. A node
# without monit gets it in the mirror step.
if command -v monit >/dev/null 2>&1; then
%[2]sfi
`, nodefs.State, monitAtBoot)
	out = append(out, &Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "prepare", Script: prepare, Hash: Hash(prepare, in.Engine), Claim: true, Bare: true}})

	p := in.Config.Properties
	if p.Adduser.N == 1 {
		script := fmt.Sprintf(`set -eu
u=%s
if ! id -u "$u" >/dev/null 2>&1; then useradd -m -s /bin/bash "$u"; echo "created user $u"; else echo "user $u exists"; fi
printf '%%s:%%s\n' "$u" "$DE_SECRET_PASSWORD" | chpasswd
`, kit.ShellQuote(p.User))
		out = append(out, &Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "adduser", Script: script, SecretEnv: []string{"password"},
			Hash: Hash(script, in.secretDigest("password", p.Password))}})
	}

	if !InstallsPackages(in.Config, in.Catalog) && !in.NoMonit[ip] {
		// Nothing to install from the mirror: leave the node's apt alone.
		return out
	}
	mirror := mirrorCheck(in.MirrorURL) + fmt.Sprintf(`b=%[1]s/apt-backup
# Keep the node's own sources once, to restore them by hand later.
if [ ! -e "$b/.saved" ]; then
  if [ -f /etc/apt/sources.list ]; then cp -a /etc/apt/sources.list "$b/"; fi
  if [ -d /etc/apt/sources.list.d ]; then cp -a /etc/apt/sources.list.d "$b/"; fi
  touch "$b/.saved"
fi
rm -f /etc/apt/sources.list
mkdir -p /etc/apt/sources.list.d
find /etc/apt/sources.list.d -maxdepth 1 -type f ! -name deployment-engine.list -delete
echo 'deb [trusted=yes] %[2]s ./' > /etc/apt/sources.list.d/deployment-engine.list
# Package scripts must not start services: monit owns them.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
# Error-Mode=any (apt 2.1.16 and later) fails on a source apt could not
# fetch instead of warning; mirrorCheck covers older apt.
apt-get update -o Acquire::Retries=3 -o APT::Sandbox::User=root -o APT::Update::Error-Mode=any
%[3]s`, nodefs.State, in.MirrorURL, monitInstall)
	out = append(out, &Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "mirror", Script: mirror, Hash: Hash(mirror)}})
	return out
}

// mirrorCheck fetches the mirror's index from the node before apt is
// pointed at it, and fails naming the URL when it cannot: apt-get update
// only warns about an unreachable source, and the step would pass while
// every install after it fails with "Unable to locate package". A step
// that fails is never marked done, so the next deploy runs it again.
func mirrorCheck(mirrorURL string) string {
	index := mirrorURL + "Packages"
	// No trap here: the step's own EXIT trap writes its marker.
	return `set -eu
` + nodefs.Fetch + `de_t=$(mktemp)
if ! de_fetch ` + kit.ShellQuote(index) + ` "$de_t" 60; then
  rm -f "$de_t"
  echo "cannot fetch the engine's mirror at "` + kit.ShellQuote(index) + `" from this node: $de_err — the nodes reach the engine at the config's home and the engine's port: listen (--listen) on an address they reach, or set home to one" >&2
  exit 1
fi
rm -f "$de_t"
`
}

// MonitRC is the engine's monit configuration for the nodes it gives monit
// to: its HTTP interface on localhost (status and control read it) and the
// include directory the checks go to.
const MonitRC = `set daemon 5
set log /var/log/monit.log
set pidfile /run/monit.pid
set idfile /var/lib/monit/id
set statefile /var/lib/monit/state
set httpd port 2812 and use address localhost allow localhost
include /etc/monit/conf.d/*
`

// monitAtBoot enables monit at boot with the node's init system, unless it
// is already, and checks that it is (with the shell's own glob: every
// node runs it in its first deploy).
const monitAtBoot = `  atboot() { for f in /etc/rc[2345].d/S*monit; do [ ! -e "$f" ] || return 0; done; [ -e /etc/systemd/system/multi-user.target.wants/monit.service ]; }
  if ! atboot; then
    if command -v systemctl >/dev/null 2>&1; then systemctl enable monit >/dev/null 2>&1 || true; fi
    if command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/monit ]; then
      update-rc.d monit defaults >/dev/null 2>&1 || true
      update-rc.d monit enable >/dev/null 2>&1 || true
    fi
  fi
  if atboot; then
    echo "monit starts at boot"
  else
    echo "cannot enable monit at boot: neither systemctl nor update-rc.d enabled it" >&2
    exit 1
  fi
`

// monitInstall gives a node without monit the mirror's, configured with
// MonitRC, enabled at boot and running.
var monitInstall = `if ! command -v monit >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o APT::Sandbox::User=root -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef monit
  mkdir -p /etc/monit/conf.d /var/lib/monit
  cat > /etc/monit/monitrc <<'DE_MONITRC'
` + MonitRC + `DE_MONITRC
  chmod 600 /etc/monit/monitrc
  echo "installed monit $(monit -V | sed -n 's/.*[Vv]ersion \([0-9.]*\).*/\1/p' | head -n1) from the mirror"
fi
` + monitAtBoot + `if ! monit summary >/dev/null 2>&1; then
  monit -c /etc/monit/monitrc
  for i in $(seq 1 60); do monit summary >/dev/null 2>&1 && break; sleep 0.5; done
  monit summary >/dev/null 2>&1 || { echo "monit does not answer on localhost:2812 after starting it" >&2; exit 1; }
  echo "monit started"
fi
`

// InstallsPackages tells whether a component of cfg installs packages.
func InstallsPackages(cfg contract.Config, cat *catalog.Catalog) bool {
	if cat == nil {
		return false
	}
	for name := range cfg.Components {
		if c := cat.Components[name]; c != nil && len(c.Packages) > 0 {
			return true
		}
	}
	return false
}

func installScript(packages []string, install string) string {
	var b strings.Builder
	b.WriteString("set -eu\nexport DEBIAN_FRONTEND=noninteractive\n")
	if len(packages) > 0 {
		q := make([]string, len(packages))
		for i, p := range packages {
			q[i] = kit.ShellQuote(p)
		}
		b.WriteString("de_before=$(ls /etc/init.d 2>/dev/null || true)\n")
		fmt.Fprintf(&b, "apt-get install -y -q -o APT::Sandbox::User=root -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-confdef %s\n", strings.Join(q, " "))
		// monit owns the packages' services at boot too: the ones these
		// packages brought are not started by the node's init.
		b.WriteString(`for s in $(ls /etc/init.d 2>/dev/null); do
  case " $(echo $de_before) " in *" $s "*) continue ;; esac
  update-rc.d "$s" disable >/dev/null 2>&1 || true
  if command -v systemctl >/dev/null; then systemctl disable "$s" >/dev/null 2>&1 || true; fi
done
`)
	}
	b.WriteString(install)
	if !strings.HasSuffix(install, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}

// Monit reads a node's new and changed checks with one reload, by the
// first start step that needs it: a register step marks monitReload
// pending (a file whose first line is not "done": an empty one, as
// engines before wrote, is pending too) and the reload marks it done,
// both with the shell's own redirection, where rm cost a process; the
// register step names its process in monitFresh when
// monit does not run it yet, so that the start of a process that monit
// starts by itself after that reload is no restart.
const (
	monitReload = nodefs.Run + "/monit-reload"
	monitFresh  = nodefs.Run + "/monit-fresh"
)

// registerScript leaves the reload, and the check of monit's config before
// it, to the next start step. It asks monit whether it knows the process
// as the start step does (de_mstat), and marks the reload with the
// shell's own redirection: a register step started four processes on
// every node of a first deploy, one of them monit's client.
func registerScript(process string) string {
	return fmt.Sprintf(`set -eu
p=%[1]s
%[5]s[ -d %[2]s ] || mkdir -p %[2]s
de_mstat
if [ -z "$ms" ]; then echo "$p" >> %[3]s; fi
echo pending > %[4]s
`, kit.ShellQuote(process), nodefs.Run, monitFresh, monitReload, monitStat)
}

// monitKnows makes monit read its checks when a register step changed
// them, or when it does not know $p, once they pass monit's own check
// (whose verbose output it keeps for the agent, nodefs.MonitVerbose: the
// agent of a first deploy would run that check again at its first
// heartbeat; where it cannot be kept, or the check fails, monit -t says
// why), and waits until it knows $p. monit
// handles a reload between checks, and a start program it is running can
// hold it up: the reload is sent again every 10 s. It needs monitStat.
const monitKnows = `de_mstat
de_rl=
[ ! -e ` + monitReload + ` ] || { IFS= read -r de_rl < ` + monitReload + ` || :; [ "$de_rl" = done ] || de_rl=pending; }
if [ "$de_rl" = pending ] || [ -z "$ms" ]; then
  ( umask 077; exec monit -v -t > ` + nodefs.MonitVerbose + ` 2>/dev/null ) || monit -t >/dev/null || exit 1
  de_mhup || monit reload
  i=0
  de_mstat
  until [ -n "$ms" ]; do
    i=$((i+1))
    if [ $i -ge 2400 ]; then echo "monit does not know $p 120s after reload" >&2; exit 1; fi
    if [ $((i % 200)) -eq 0 ]; then monit reload; fi
    de_nap 0.05
    de_mstat
  done
  echo done > ` + monitReload + `
fi
`

// ReloadOrRestart joins a component's reload command to the restart that
// stands in when it fails; the plan preview tells a reload by it.
const ReloadOrRestart = " ) || monit restart"

// monitStat defines de_mstat, which asks monit once for the state of $p:
// ms is its status ("OK", "Not monitored", …; empty when monit does not
// know $p), mpid its process; de_mact ACTION, which asks monit to start,
// stop or restart $p, as monit's client does; and de_nap SECS, a sleep
// without a process (a read that times out on a descriptor no one writes
// to, opened at the first nap: a pseudo-terminal's master, whose other
// side no one opens; where that cannot be opened or does not wait, a pipe
// of its own, which costs a fork); and
// de_mhup, which makes monit read its checks again as its client's reload
// does (SIGHUP to the daemon, whose pid file it reads), without the
// client's parse of its whole config; it fails, for the client to do it,
// where the pid file is elsewhere or names another process.
//
// Both ask monit's HTTP interface on localhost:2812 (where the engine's
// monitrc and its agent have it) through bash's own /dev/tcp and read the
// answer with builtins: a start waits by asking every 50 ms, on every node
// at once, and monit's client costs 10–40 ms of CPU per call on a busy
// node, most of a change's work on the node; this costs 0.5 ms. The status
// line is awaited 10 s at most; the rest is read in one go (bash reads a
// socket a byte at a time, and with a timeout blocks signals around each
// byte), within the step's own deadline. Any other answer (monit asking
// for a password, a name that would need quoting, no monit listening) goes
// to monit's client, as before.
const monitStat = `de_mhttp() {
  local m r=
  de_code= de_b=
  case $p in ''|*[!A-Za-z0-9._-]*) return 1 ;; esac
  { exec {m}<>/dev/tcp/` + nodefs.MonitHTTP + `; } 2>/dev/null || return 1
  printf '%s' "$1" >&"$m"
  IFS= read -r -t 10 -u "$m" de_b || :
  [ -z "$de_b" ] || IFS= read -r -N 65536 -u "$m" r || :
  exec {m}>&-
  de_code=${de_b#HTTP/* }; de_code=${de_code%% *}
  de_b+=$'\n'$r
}
de_mline() {
  local v=
  [[ $de_b =~ $'\n'"  $1 "+([^$'\r\n']*) ]] && v=${BASH_REMATCH[1]}
  while [[ $v == *$'\e['* ]]; do v=${v%%$'\e['*}${v#*$'\e['*m}; done
  printf -v "$2" '%s' "$v"
}
de_mstat() {
  local k v
  ms= mpid=
  if de_mhttp "GET /_status?format=text&service=$p HTTP/1.0"$'\r\n\r\n'; then
    de_mline status ms; de_mline pid mpid
    if [ "$de_code" = 200 ] && [ -n "$ms" ]; then return 0; fi
    if [ "$de_code" = 400 ] && [[ $de_b == *"'$p' not found"* ]]; then ms= mpid=; return 0; fi
    ms= mpid=
  fi
  while read -r k v; do case $k in status) ms=$v ;; pid) mpid=$v ;; esac; done < <(monit status "$p" 2>/dev/null)
}
de_mact() {
  local t=$RANDOM$RANDOM$RANDOM$RANDOM b
  b="action=$1&service=$p&format=text&securitytoken=$t"
  if de_mhttp "POST /_doaction HTTP/1.0"$'\r\n'"Content-Type: application/x-www-form-urlencoded"$'\r\n'"Cookie: securitytoken=$t"$'\r\n'"Content-Length: ${#b}"$'\r\n\r\n'"$b"; then
    case $de_code in 200|302) return 0 ;; esac
  fi
  monit "$1" "$p"
}
de_mhup() {
  local pid c
  read -r pid < ` + nodefs.MonitPid + ` 2>/dev/null || return 1
  case $pid in ''|*[!0-9]*) return 1 ;; esac
  read -r c < /proc/$pid/comm 2>/dev/null && [ "$c" = monit ] && kill -HUP "$pid" 2>/dev/null
}
de_w= de_wdev=/dev/ptmx
de_nap() {
  local rc=0
  [ -n "$de_w" ] || { exec {de_w}<>"$de_wdev"; } 2>/dev/null || exec {de_w}<> <(:)
  read -r -t "$1" -u "$de_w" _ || rc=$?
  if [ $rc -le 128 ]; then exec {de_w}<&-; exec {de_w}<> <(:); read -r -t "$1" -u "$de_w" _ || :; fi
}
`

// startScript starts a component, or applies a change to a running one
// (its reload, or a restart), then waits until monit sees it running,
// asking again while monit leaves it unmonitored. A restart counts once
// monit reports a new process: its old one would still read OK. A process
// monit did not run before its check was registered is started, never
// restarted, even when monit started it already.
func startScript(process, reload string) string {
	apply := `old=$mpid
  de_mact restart`
	if strings.TrimSpace(reload) != "" {
		apply = "( " + strings.TrimSpace(reload) + ReloadOrRestart + ` "$p"`
	}
	return fmt.Sprintf(`set -u
p=%[1]s
%[5]sde_mstat
fresh=
[ -n "$ms" ] || fresh=1
if [ -s %[4]s ]; then
  de_f= de_rest=
  while IFS= read -r de_l; do if [ "$de_l" = "$p" ]; then de_f=1; else de_rest+=$de_l$'\n'; fi; done < %[4]s
  if [ -n "$de_f" ]; then fresh=1; printf '%%s' "$de_rest" > %[4]s; fi
fi
%[3]sold=
de_mstat
if [ -z "$fresh" ] && [ "${ms%%%% *}" = OK ]; then
  echo "applying change to running $p"
  %[2]s
else
  de_mact start
fi
for ((i = 1; i <= 2400; i++)); do
  de_mstat
  if [ "${ms%%%% *}" = OK ] && { [ -z "$old" ] || [ "$mpid" != "$old" ]; }; then
    echo "$p running"; exit 0
  fi
  # monit drops a request that meets its reload, or waits on another
  # check's start program: ask again every 10 s while it does nothing
  # (a check that only alerts stays "Does not exist" after a lost start).
  if [ $((i %% 200)) -eq 0 ]; then case $ms in "Not monitored"*|"Does not exist"*) de_mact start ;; esac; fi
  de_nap 0.05
done
monit status "$p" >&2 || true
echo "$p did not reach running within 120s: monit says ${ms:-it does not know $p}" >&2
exit 1
`, kit.ShellQuote(process), apply, monitKnows, monitFresh, monitStat)
}

func removeScript(name, process string, files []string) string {
	rm := ""
	if len(files) > 0 {
		quoted := make([]string, len(files))
		for i, f := range files {
			quoted[i] = kit.ShellQuote(f)
		}
		rm = "rm -f -- " + strings.Join(quoted, " ") + "\n"
	}
	return fmt.Sprintf(`set -u
p=%[2]s
%[5]sde_mact stop 2>/dev/null || true
for ((i = 1; i <= 600; i++)); do
  de_mstat
  case $ms in ''|"Not monitored"*|"Does not exist"*) break ;; esac
  de_nap 0.05
done
rm -f /etc/monit/conf.d/%[1]s
monit reload || true
%[4]s%[3]s
echo "removed %[1]s"
`, name, kit.ShellQuote(process), nodefs.ClearMarkers(name+"."), rm, monitStat)
}

// checkScript is an upload's script: the catalog's check of the files it
// wrote, or nothing.
func checkScript(check string) string {
	if strings.TrimSpace(check) == "" {
		return "true\n"
	}
	return "set -eu\n" + check
}

// RestartScript restarts a process through monit and waits until monit
// reports a new process OK: monit restart returns before it acts.
func RestartScript(process string) string {
	return fmt.Sprintf(`set -u
p=%[1]s
%[2]sde_mstat
old=$mpid
de_mact restart
for ((i = 1; i <= 2400; i++)); do
  de_mstat
  if [ "${ms%%%% *}" = OK ] && [ -n "$mpid" ] && [ "$mpid" != "$old" ]; then echo "$p restarted: pid $old -> $mpid"; exit 0; fi
  de_nap 0.05
done
echo "$p did not come back as a new process within 120 s: monit says ${ms:-it does not know $p}" >&2
exit 1
`, kit.ShellQuote(process), monitStat)
}

var pkgRe = regexp.MustCompile(`(?m)^apt-get install -y -q .*--force-confdef (.+)$`)

// PackagesOf reads the packages an install script (installScript)
// installs.
func PackagesOf(script string) []string {
	m := pkgRe.FindStringSubmatch(script)
	if m == nil {
		return nil
	}
	var out []string
	for _, f := range strings.Fields(m[1]) {
		out = append(out, strings.Trim(f, "'"))
	}
	return out
}
