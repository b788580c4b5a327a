package installer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodefs"
)

// probeScript reports one "key=value" per line: hardware, the engine that
// owns the node (after removing a claim by $DE_UNCLAIM, when set, and the
// engine's whole state when $DE_LEAVE owns it or no one does), its OS,
// its monit, and how its resolver answers each name given as an argument,
// in order ("name=ADDR ADDR...", nothing after = when it did not resolve).
// It runs in the node's login shell (POSIX sh) and reads what it can with
// the shell's own builtins: a deploy checks every node first, and a
// process costs more than the check. Only df runs, monit -V where monit's
// daemon does not tell its version over HTTP to bash's /dev/tcp (its
// client costs 10–40 ms of CPU on a busy node), and for each name getent
// under timeout: the CPUs are the shell's allowed ones (what nproc
// counts), the RAM MemTotal, the OS /etc/os-release sourced.
const probeScript = `de_n=0 de_l=
while read -r de_k de_v; do [ "$de_k" != Cpus_allowed_list: ] || { de_l=$de_v; break; }; done < /proc/self/status
de_ifs=$IFS; IFS=,
for de_r in $de_l; do case $de_r in *-*) de_n=$((de_n + ${de_r#*-} - ${de_r%-*} + 1));; ?*) de_n=$((de_n + 1));; esac; done
IFS=$de_ifs
[ "$de_n" -gt 0 ] || de_n=$(nproc)
echo "cpu=$de_n"
de_v=; while read -r de_k de_v _; do [ "$de_k" != MemTotal: ] || break; de_v=; done < /proc/meminfo
echo "ram=$de_v"
de_2() { de_v=$2; }
if de_v=$(df -Pk /); then set -f; de_2 ${de_v#*"
"}; set +f; else de_v=; fi
echo "disk=$de_v"
de_o=; [ ! -f ` + nodefs.Owner + ` ] || read -r de_o < ` + nodefs.Owner + `
if [ -n "${DE_UNCLAIM:-}" ] && [ "$de_o" = "$DE_UNCLAIM" ]; then rm -f ` + nodefs.Owner + ` && echo "unclaimed=$DE_UNCLAIM" && de_o=; fi
if [ -n "${DE_LEAVE:-}" ] && { [ -z "$de_o" ] || [ "$de_o" = "$DE_LEAVE" ]; }; then rm -rf ` + nodefs.State + ` && echo "left=1" && de_o=; fi
echo "owner=$de_o"
if [ -r /etc/os-release ]; then ID= VERSION_ID= PRETTY_NAME=; . /etc/os-release; echo "os_id=${ID:-}"; echo "os_version=${VERSION_ID:-}"; echo "os_name=${PRETTY_NAME:-}"; fi
de_v=
if command -v monit >/dev/null 2>&1; then
  if [ -n "${BASH_VERSION:-}" ] && { exec 9<>/dev/tcp/` + nodefs.MonitHTTP + `; } 2>/dev/null; then
    printf 'GET /_ping HTTP/1.0\r\n\r\n' >&9
    while read -r -t 5 de_k de_a de_b <&9; do case $de_k in Server:) [ "$de_a" != monit ] || de_v="version $de_b"; break;; ''|?) break;; esac; done
    exec 9>&-
  fi
  [ -n "$de_v" ] || de_v=$(monit -V 2>/dev/null)
fi
case $de_v in *[Vv]ersion\ [0-9]*) de_v=${de_v#*[Vv]ersion }; de_v=${de_v%%[!0-9.]*};; *) de_v=;; esac
echo "monit=$de_v"
for n in "$@"; do
  de_v=; de_g=$(timeout 5 getent ahostsv4 "$n" 2>/dev/null)
  while read -r de_a _; do de_v="$de_v $de_a"; done <<de_EOF
$de_g
de_EOF
  echo "name=$de_v"
done
`

// probe contacts every node at once with the given credentials.
func (i *Installer) probe(ctx context.Context, req micro.Request) (int, any, error) {
	var p contract.Probe
	if err := kit.Decode(req, &p); err != nil {
		return 0, nil, err
	}
	for what, id := range map[string]string{"unclaim": p.Unclaim, "leave": p.Leave} {
		if id != "" && !contract.ValidEngineID(id) {
			return 0, nil, kit.Errorf(400, "%s: %q is not an engine id (e- and lowercase letters or digits)", what, contract.Clip(id))
		}
	}
	if err := checkFetch(p.Fetch); err != nil {
		return 0, nil, err
	}
	auth, err := i.restrict(ctx, p.Auth)
	if err != nil {
		return 0, nil, err
	}
	p.Auth = auth
	timeout := time.Duration(p.TimeoutMS) * time.Millisecond
	if timeout <= 0 || timeout > time.Minute {
		timeout = 15 * time.Second
	}
	out := contract.ProbeReply{V: contract.Version, Nodes: make([]contract.ProbeResult, len(p.Nodes))}
	var wg sync.WaitGroup
	for n, ip := range p.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Nodes[n] = i.probeTurns(ctx, ip, p, timeout)
		}()
	}
	wg.Wait()
	return 200, out, nil
}

// probeTurns checks one node in a turn of its own, whose deadline runs
// from the turn; Stop (or the requester's end) ends them all. A node that
// answered the handshake but whose check ran out of time gets one more
// turn, twice as long: on a control machine busy with other clusters'
// deploys, the check's shell waits for this machine as much as for the
// node (on a test bed whose nodes share it, for both). A node that does
// not answer at all is not asked again.
func (i *Installer) probeTurns(ctx context.Context, ip string, p contract.Probe, timeout time.Duration) contract.ProbeResult {
	turn := i.o.ProbeTurns
	for try := 1; ; try++ {
		r, slow := func() (contract.ProbeResult, bool) {
			turn <- struct{}{}
			defer func() { <-turn }()
			ctx, cancel := context.WithTimeout(ctx, time.Duration(try)*timeout)
			defer cancel()
			r := i.probeNode(ctx, ip, p)
			return r, !r.Reachable && strings.HasPrefix(r.Error, readHardware) && ctx.Err() == context.DeadlineExceeded
		}()
		if !slow || try == contract.ProbeTries || ctx.Err() != nil {
			return r
		}
		i.log.Warn("node check ran out of time after the handshake; it gets one more turn", "node", ip, "err", r.Error)
	}
}

// readHardware begins the error of a check that reached the node but did
// not read its answer.
const readHardware = "read hardware: "

func (i *Installer) probeNode(ctx context.Context, ip string, p contract.Probe) contract.ProbeResult {
	auth, resolve, fetch, unclaim := p.Auth, p.Resolve, p.Fetch, p.Unclaim
	r := contract.ProbeResult{IP: ip}
	script := probeScript
	if len(resolve) > 0 {
		q := make([]string, len(resolve))
		for i, n := range resolve {
			q[i] = kit.ShellQuote(n)
		}
		script = "set -- " + strings.Join(q, " ") + "\n" + script
	}
	if len(fetch) > 0 {
		script += fetchScript(fetch)
	}
	if unclaim != "" {
		script = "DE_UNCLAIM=" + kit.ShellQuote(unclaim) + "\n" + script
	}
	if p.Leave != "" {
		script = "DE_LEAVE=" + kit.ShellQuote(p.Leave) + "\n" + script
	}
	// A deploy's check asks whether the node answers now: its agent, when
	// it takes commands, proves that without an SSH handshake. A config's
	// check (names, the way back, a takeover) proves SSH itself, which a
	// first deploy and every fallback need.
	if len(resolve) == 0 && len(fetch) == 0 && unclaim == "" && p.Leave == "" {
		if c := i.agents.conn(ctx, ip, i.sshDialer(ip, auth)); c != nil {
			// The agent answers the plain check itself (nodeexec.ReadProbe).
			if ac, ok := c.(*agentConn); ok {
				read := *ac
				read.read = nodeexec.ReadProbe
				c = &read
			}
			b, err := output(ctx, c, script, nil)
			if err == nil {
				return probed(ip, b, resolve, fetch)
			}
			i.log.Warn("probe through the node's agent failed; over SSH", "node", ip, "err", err)
		}
	}
	c, err := i.dial(ctx, ip, auth)
	if err != nil {
		r.Error = describe(err)
		r.HostKeyChanged = errors.Is(err, errHostKeyChanged)
		return r
	}
	// A node that answered keeps its connection for the steps that follow
	// (a deploy checks its nodes first): one handshake, not two. The check
	// itself always dials, so that it proves the node answers now.
	kept := false
	defer func() {
		if !kept {
			c.Close()
		}
	}()
	b, err := output(ctx, i.sshConn(c), script, nil)
	if err != nil {
		r.Error = readHardware + err.Error()
		if u := auth.UserFor(ip); u != "root" && strings.Contains(err.Error(), "sudo") {
			r.Error += fmt.Sprintf(" — the engine logs in to %s as %s and runs its commands through sudo, which must not ask for a password: give %s a rule such as %q in /etc/sudoers.d", ip, u, u, u+" ALL=(ALL) NOPASSWD: ALL")
		}
		return r
	}
	got := probed(ip, b, resolve, fetch)
	if got.Reachable {
		kept = i.keep(ip, authID(auth), c) == c
	}
	return got
}

// probed reads a node's answer to the probe script.
func probed(ip string, b []byte, resolve, fetch []string) contract.ProbeResult {
	r := contract.ProbeResult{IP: ip}
	got, err := parseProbe(string(b))
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if len(got.Names) != len(resolve) {
		r.Error = fmt.Sprintf("read names: asked %d, got %d answers", len(resolve), len(got.Names))
		return r
	}
	for k := range got.Names {
		got.Names[k].Name = resolve[k]
	}
	if len(got.Fetched) != len(fetch) {
		r.Error = fmt.Sprintf("read fetches: asked %d, got %d answers", len(fetch), len(got.Fetched))
		return r
	}
	for k := range got.Fetched {
		got.Fetched[k].URL = fetch[k]
	}
	got.IP = ip
	got.Hardware.IP = ip
	got.Reachable = true
	return got
}

// checkFetch refuses what a probe's Fetch may not ask of a node: more
// URLs than MaxProbeFetch, or anything but a plain http(s) URL.
func checkFetch(urls []string) error {
	if len(urls) > contract.MaxProbeFetch {
		return kit.Errorf(400, "fetch: %d URLs, at most %d", len(urls), contract.MaxProbeFetch)
	}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || strings.ContainsFunc(s, unicode.IsSpace) {
			return kit.Errorf(400, "fetch: %q is not an http URL", contract.Clip(s))
		}
	}
	return nil
}

// fetchScript has the node fetch each URL as its apt would, one
// "fetch=REASON" line each (nothing after = when it got the URL). 4 s a
// URL: with two names that time out (5 s each) the probe still answers
// within its 15 s.
func fetchScript(urls []string) string {
	var b strings.Builder
	b.WriteString(nodefs.Fetch + "de_t=$(mktemp)\n")
	for _, u := range urls {
		fmt.Fprintf(&b, "if de_fetch %s \"$de_t\" 4; then echo fetch=; else echo \"fetch=$de_err\"; fi\n", kit.ShellQuote(u))
	}
	b.WriteString("rm -f \"$de_t\"\n")
	return b.String()
}

// parseProbe reads probeScript's output.
func parseProbe(s string) (contract.ProbeResult, error) {
	var r contract.ProbeResult
	var cpuS, ramS, diskS string
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "cpu":
			cpuS = v
		case "ram":
			ramS = v
		case "disk":
			diskS = v
		case "owner":
			r.Owner = v
		case "unclaimed":
			r.Unclaimed = v
		case "left":
			r.Left = v == "1"
		case "os_id":
			r.OS.ID = v
		case "os_version":
			r.OS.VersionID = v
		case "os_name":
			r.OS.PrettyName = v
		case "monit":
			r.Monit = v
		case "name":
			// Each address as often as the resolver gave it (a line for
			// each socket type): once each, in order.
			addrs := strings.Fields(v)
			slices.Sort(addrs)
			r.Names = append(r.Names, contract.NameLookup{Addrs: append([]string{}, slices.Compact(addrs)...)})
		case "fetch":
			r.Fetched = append(r.Fetched, contract.FetchResult{Error: v})
		}
	}
	cpu, err1 := strconv.Atoi(cpuS)
	ram, err2 := strconv.ParseInt(ramS, 10, 64)
	disk, err3 := strconv.ParseInt(diskS, 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || cpu < 1 || ram < 1 || disk < 1 {
		return r, fmt.Errorf("unexpected hardware report %q", s)
	}
	r.Hardware = contract.NodeHardware{CPU: cpu, RAM: ram, DISK: contract.DiskMB(disk)}
	return r, nil
}

// describe turns a dial error into what failed, by kind first (timeout,
// refused, auth, host key, unreachable), then what to do.
func describe(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errHostKeyChanged):
		return "host key: " + err.Error()
	case errors.Is(err, errAuth):
		return "auth: " + err.Error()
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused: " + err.Error()
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout: " + err.Error() + " — check that the node is up and its network reaches it"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable: " + err.Error() + " — no route to the node from the control machine"
	}
	return err.Error()
}
