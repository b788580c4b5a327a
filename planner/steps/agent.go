package steps

import (
	"encoding/json"
	"fmt"
	"path"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// Where the node agent lives on a node, and where the agent of engines
// before it lived: the engine's own binary, run as `deployment-engine
// agent`.
const (
	AgentBin    = "/usr/local/bin/de-agent"
	oldAgentBin = "/usr/local/bin/deployment-engine"
	// agentCheckRead is a copy of the agent's monit check as monit last
	// read it.
	agentCheckRead = nodefs.State + "/agent.monit"
)

// agentStep installs the node agent on ip: its config and monit check as
// the step's files, its binary fetched by the node from the engine over
// HTTP (never when the node has that binary already) and checked against
// its SHA-256. The agent of an earlier engine is stopped and removed.
func agentStep(in Builder, ip string) *Step {
	conf := contract.AgentConfig{V: contract.Version, IP: ip, NATS: in.Agent.NATSURL, User: bus.AgentUser(ip),
		PasswordFile: nodefs.AgentPassword, CA: in.Agent.CA, Components: []contract.AgentComponent{}}
	if in.agentComps != nil {
		conf.Components = append(conf.Components, in.agentComps[ip]...)
	}
	for _, name := range Placement(in.Config)[ip] {
		if in.Catalog == nil {
			break
		}
		if c := in.Catalog.Components[name]; c != nil {
			conf.Components = append(conf.Components, contract.AgentComponent{Name: name, Process: c.Process, Logs: c.Logs})
		}
	}
	confJSON, _ := json.MarshalIndent(conf, "", "  ")
	// Both patterns are anchored at the agent's binary, and end at the
	// space before its arguments: unanchored, they matched any process
	// whose command line mentions the agent (a shell running a script that
	// does), which monit then took for the agent and its stop program
	// killed.
	monit := fmt.Sprintf(`check process de-agent matching "^%[1]s "
  start program = "/bin/sh -c '%[1]s --config %[2]s >>/var/log/de-agent.log 2>&1 &'"
  stop program = "/usr/bin/pkill -f '^%[1]s '"
`, AgentBin, nodefs.AgentConfig)
	files := []contract.StepFile{
		File(nodefs.AgentConfig, 0o600, append(confJSON, '\n')),
		File("/etc/monit/conf.d/de-agent", 0o600, []byte(monit)),
	}
	// The agent's NATS password is no file of the step: the step is kept
	// in the bus. The installer hands it to the script (DE_SECRET_AGENT).
	pass := writePassword(nodefs.AgentPassword)
	// monit reads the check again when it is not the one monit last read
	// (an earlier engine's, say), before that engine's agent goes: monit
	// would start it again. A running agent sees its new config or binary
	// and restarts itself.
	// The two copies are compared and copied with the shell's builtins.
	reread := fmt.Sprintf(`de_c= de_r=
IFS= read -r -d '' de_c < /etc/monit/conf.d/de-agent || :
[ ! -f %[1]s ] || { IFS= read -r -d '' de_r < %[1]s || :; }
[ "$de_c" = "$de_r" ] || echo pending > %[2]s
p=de-agent
%[3]s%[4]sprintf '%%s' "$de_c" > %[1]s
`, agentCheckRead, monitReload, monitStat, monitKnows)
	script := pass + fetchAgent(AgentBin, in.Agent.URL, in.Agent.SHA256) + reread + oldAgentGone + startAgent
	return &Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "agent", Files: files, Script: script, SecretEnv: []string{"agent"}, Bare: true,
		Hash: Hash(script, monit, in.Agent.SHA256, filesHash(files), in.secretDigest("agent", in.Agent.Password(ip)))}}
}

// writePassword is the agent step's start, which writes the agent's NATS
// password ($DE_SECRET_AGENT) at path unless the node holds it already:
// in place where there is none (no agent can be reading it), else beside
// it, then moved over it. Everything the step writes is the engine's, for
// root alone (the binary is made executable for all): its umask says so,
// with no subshell for the password.
func writePassword(path string) string {
	return fmt.Sprintf(`set -eu
umask 077
de_pw=
[ ! -f %[1]s ] || IFS= read -r de_pw < %[1]s || :
if [ ! -e %[1]s ]; then
  printf '%%s\n' "$DE_SECRET_AGENT" > %[1]s
elif [ "$de_pw" != "$DE_SECRET_AGENT" ]; then
  printf '%%s\n' "$DE_SECRET_AGENT" > %[1]s.tmp && mv %[1]s.tmp %[1]s
fi
de_pw=
`, kit.ShellQuote(path))
}

// startAgent asks monit to start the agent until monit takes the request.
// monit answers a status before it handles the reload it was sent, then
// closes its HTTP port while it reads its checks again: a single start can
// meet that moment ("Connection refused") and fail the step. It asks as
// de_mact does (monitStat, $p set): monit's HTTP interface, its client
// where that does not answer.
const startAgent = `i=0
until de_mact start >/dev/null 2>&1; do
  i=$((i+1))
  if [ $i -ge 300 ]; then
    echo "monit did not take the agent's start for 30s: $(monit start de-agent 2>&1)" >&2
    exit 1
  fi
  de_nap 0.1
done
`

// fetchAgent installs the agent binary of SHA-256 sum from url at bin,
// atomically, unless the node has it already. Where the node has no
// binary there, it is fetched in place, with no mv: it is made
// executable only once it checks out, so nothing can run it before. The
// engine's
// anonymous routes answer 429 to a crowd of nodes at once: the fetch is
// tried five times, a second apart.
//
// The binary is hashed by openssl where the node has it (its SHA-256
// uses the CPU's SHA instructions: half of sha256sum's CPU for the 10 MB
// agent, on every node of a first deploy at once), else by sha256sum; an
// openssl that answers anything but a digest counts as none.
//
// An http:// URL is fetched by bash itself (de_hget): the agent reaches
// the engine directly (its NATS connection does), so apt's proxy settings,
// for which de_fetch goes through apt-helper, have nothing to add, and
// apt-helper with its http method cost a node about 80 ms of CPU where
// bash and one cat cost a few. Other URLs, and a shell without /dev/tcp,
// go to de_fetch.
func fetchAgent(bin, url, sum string) string {
	return fmt.Sprintf(`bin=%[1]s
sum=%[2]s
url=%[3]s
%[7]sif [ -f "$bin" ] && de_sha "$bin" && [ "$de_h" = "$sum" ]; then
  echo "de-agent $sum is installed already"
else
%[4]s%[6]s  t=%[5]s.$$
  [ -e "$bin" ] || [ -L "$bin" ] || t=$bin
  i=0
  until de_hget "$url" "$t" 120; do
    i=$((i+1))
    if [ $i -ge 5 ]; then
      rm -f "$t"
      echo "cannot fetch the node agent from the engine at $url: $de_err — the nodes reach the engine at the config's home and the engine's port: listen (--listen) on an address they reach, or set home to one" >&2
      exit 1
    fi
    sleep 1
  done
  de_sha "$t" || :
  if [ "$de_h" != "$sum" ]; then
    rm -f "$t"
    echo "the node agent fetched from $url has SHA-256 ${de_h:-that cannot be read}, not $sum: not installed" >&2
    exit 1
  fi
  chmod 755 "$t"
  [ "$t" = "$bin" ] || mv -f "$t" "$bin"
  echo "fetched de-agent $sum from the engine"
fi
`, kit.ShellQuote(bin), kit.ShellQuote(sum), kit.ShellQuote(url), nodefs.Fetch, kit.ShellQuote(path.Join(path.Dir(bin), ".de-agent")), hget, sha)
}

// sha defines de_sha FILE, which sets de_h to FILE's SHA-256 in hex (empty
// where it cannot be read) and fails where it is empty.
const sha = `de_sha() {
  de_h=
  if command -v openssl >/dev/null; then read -r de_h _ < <(exec openssl dgst -sha256 -r "$1" 2>/dev/null) || :; fi
  [[ $de_h =~ ^[0-9a-f]{64}$ ]] || { de_h=; read -r de_h _ < <(exec sha256sum -- "$1" 2>/dev/null) || :; }
  de_h=${de_h#\\}
  [ -n "$de_h" ]
}
`

// hget defines de_hget URL DEST SECONDS, which fetches an http:// URL into
// DEST with bash's /dev/tcp, an HTTP/1.0 GET whose body runs until the
// connection closes; anything else goes to de_fetch. On failure it sets
// de_err, on one line, and returns 1. The body's deadline is kept by the
// shell, as de_run keeps a step's: it waits on a pipe whose only writer is
// the cat that copies the body, where timeout(1) cost a process.
var hget = `de_hget() {
  local hp=${1#http://} path=/ host port fd st l r w c de_pp
  case $1 in http://*) ;; *) de_fetch "$@"; return ;; esac
  case $hp in */*) path=/${hp#*/} hp=${hp%%/*} ;; esac
  case $hp in
    \[*\]:*) host=${hp%%]*} host=${host#[} port=${hp##*]:} ;;
    *:*) host=${hp%%:*} port=${hp##*:} ;;
    *) host=$hp port=80 ;;
  esac
  case $port in ''|*[!0-9]*) de_fetch "$@"; return ;; esac
  if ! { exec {fd}<>"/dev/tcp/$host/$port"; } 2>/dev/null; then de_err="cannot connect to $hp"; return 1; fi
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: deployment-engine-node\r\n\r\n' "$path" "$hp" >&"$fd"
  st=; IFS= read -r -t 10 -u "$fd" st || :
  st=${st%$'\r'}
  while IFS= read -r -t 10 -u "$fd" l && [ -n "${l%$'\r'}" ]; do :; done
  case $st in
    'HTTP/1.'?' 200 '*) ;;
    '') exec {fd}<&-; de_err="no answer within 10s"; return 1 ;;
    *) exec {fd}<&-; de_err="the engine answered ${st#HTTP/1.? }"; return 1 ;;
  esac
  ` + kit.ShellPipe("{r}") + `  exec {w}>/proc/self/fd/$r
  cat <&"$fd" > "$2" {r}<&- &
  c=$!
  exec {w}>&- {fd}<&-
  st=0; IFS= read -r -t "$3" -u "$r" l || st=$?
  exec {r}<&-
  if [ $st -gt 128 ]; then kill $c 2>/dev/null; wait $c; de_err="the transfer did not finish within $3s"; return 1; fi
  wait $c || { de_err="the transfer broke off"; return 1; }
}
`

// oldAgentGone stops the agent of an earlier engine, which ran as that
// engine's binary (monit no longer knows it by now), and removes that
// binary unless something else on the node runs or starts it (a node
// that is the control machine too). Its pattern is anchored, as monit's.
// Only this step removes that binary, once its agent is gone: a node
// without it runs no such agent, and is spared pgrep's walk of /proc.
var oldAgentGone = fmt.Sprintf(`old=%[1]s
if [ -e "$old" ]; then
  if pgrep -f '^%[1]s agent' >/dev/null; then
    pkill -f '^%[1]s agent' || true
    for i in $(seq 1 100); do pgrep -f '^%[1]s agent' >/dev/null || break; sleep 0.05; done
    pkill -KILL -f '^%[1]s agent' || true
    echo "stopped the agent of an earlier engine ($old agent)"
  fi
  if pgrep -f '^%[1]s( |$)' >/dev/null || grep -rqsF "$old" /etc/systemd/system /lib/systemd/system /usr/lib/systemd/system /etc/init.d; then
    echo "kept $old: a process or a service of this node uses it"
  else
    rm -f "$old"
    echo "removed $old, the agent of an earlier engine"
  fi
fi
`, oldAgentBin)
