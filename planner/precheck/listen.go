package precheck

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// ListenWarning says why the nodes of cfg cannot reach the engine's HTTP
// address, where they fetch packages, releases and the agent, judged
// from the engine's --listen host alone (no node is asked): a loopback
// address while some node is not on this machine, or one address while
// the config's home is another. "" when the engine listens on every
// address, on home, or on a name it cannot judge.
func ListenWarning(listenHost string, port int, cfg contract.Config) string {
	home := cfg.Properties.Home
	if listenHost == "" || home == "" {
		return ""
	}
	at := func(host string) string { return net.JoinHostPort(host, strconv.Itoa(port)) }
	fix := fmt.Sprintf("serve with --listen %s (or %s), or set home to an address the engine listens on that the nodes reach",
		at(home), at("0.0.0.0"))
	listen, err := netip.ParseAddr(strings.Trim(listenHost, "[]"))
	if err != nil {
		if strings.EqualFold(listenHost, "localhost") {
			listen = netip.MustParseAddr("127.0.0.1")
		} else {
			return "" // a host name: what it resolves to is not known here
		}
	}
	if listen.IsUnspecified() {
		return ""
	}
	if listen.IsLoopback() {
		var far []string
		for _, ip := range cfg.Nodes() {
			if a, err := netip.ParseAddr(ip); err == nil && !a.IsLoopback() {
				far = append(far, ip)
			}
		}
		if len(far) == 0 {
			return ""
		}
		if len(far) > 3 {
			far = append(far[:3], fmt.Sprintf("and %d more", len(far)-3))
		}
		return fmt.Sprintf("the engine listens on %s (--listen), a loopback address that nodes %s cannot reach: "+
			"their fetches from the config's home %s (packages, releases, the mirror, the agent) will fail with curl: (7); %s",
			at(listenHost), strings.Join(far, ", "), at(home), fix)
	}
	if h, err := netip.ParseAddr(home); err == nil && h == listen {
		return ""
	}
	return fmt.Sprintf("the engine listens on %s (--listen), but the config's home is %s: the nodes fetch packages, releases, "+
		"the mirror and the agent from %s, where the engine does not listen; %s", at(listenHost), home, at(home), fix)
}
