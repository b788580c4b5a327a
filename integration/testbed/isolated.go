package testbed

import (
	"fmt"
	"os/exec"
	"path/filepath"
)

// An isolated bed (Options.Isolated) puts its nodes where the control
// machine cannot reach them: on a second bridge, dei<tag>, that the host
// has no address on and no route to, in 10.214.N.0/24. One more node, the
// gateway (Bed.Gateway), sits on both bridges: 10.213.N.2 beside the
// host, 10.214.N.1 beside the nodes. It forwards and masquerades the
// nodes' traffic, so that they still reach the engine at Home (its
// mirror, its NATS), but the host reaches them only through the
// gateway's sshd, as a jump host.

// checkIsolated says why this machine cannot bring up an isolated bed.
func checkIsolated() error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("testbed: an isolated bed's gateway masquerades with nft: run `make deps` as root (installs nftables)")
	}
	return nil
}

// isolatedSubnet is the nodes' subnet of an isolated bed whose host side
// is 10.213.third.0/24.
func isolatedSubnet(third int) string { return fmt.Sprintf("10.214.%d.0/24", third) }

// layout names the bed's nodes: o.Nodes of them on the host's bridge, or,
// isolated, the gateway there and o.Nodes behind it.
func (b *Bed) layout(o Options, third int, tag string) []*Node {
	node := func(i int, suffix, ip string) *Node {
		return &Node{Name: fmt.Sprintf("de-%s-n%s", b.Name, suffix), IP: ip,
			Hostname: fmt.Sprintf("%s-node%s", b.Name, suffix), Veth: fmt.Sprintf("dev%sn%s", tag, suffix), Password: o.RootPassword,
			Limits: o.limits(i), dir: filepath.Join(b.dir, "fs", "n"+suffix), bed: b}
	}
	var out []*Node
	base := fmt.Sprintf("10.213.%d.", third)
	if o.Isolated {
		b.Isolated = isolatedSubnet(third)
		b.Inner = "dei" + tag
		gw := node(o.Nodes, "gw", fmt.Sprintf("10.213.%d.2", third))
		gw.Inner, gw.InnerVeth = fmt.Sprintf("10.214.%d.1", third), fmt.Sprintf("dev%sngi", tag)
		b.Gateway = gw
		out = append(out, gw)
		base = fmt.Sprintf("10.214.%d.", third)
	}
	for i := 0; i < o.Nodes; i++ {
		n := node(i, fmt.Sprint(i), fmt.Sprintf("%s%d", base, i+2))
		n.Isolated = o.Isolated
		b.Nodes = append(b.Nodes, n)
		out = append(out, n)
	}
	return out
}

// makeBridges adds the bed's bridge, with Home on it, and an isolated
// bed's second bridge, up with no address of the host's on it.
func (b *Bed) makeBridges() error {
	steps := [][]string{
		{"ip", "link", "add", b.Bridge, "type", "bridge"},
		{"ip", "addr", "add", b.Home + "/24", "dev", b.Bridge},
		{"ip", "link", "set", b.Bridge, "up"},
	}
	if b.Inner != "" {
		steps = append(steps, []string{"ip", "link", "add", b.Inner, "type", "bridge"}, []string{"ip", "link", "set", b.Inner, "up"})
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// links are the commands that wire n's network: its eth0 on its bridge,
// and for the gateway an eth1 on the isolated one with forwarding and
// masquerading; an isolated node routes everything through the gateway.
func (n *Node) links() [][]string {
	in := func(args ...string) []string { return append([]string{"ip", "netns", "exec", n.Name}, args...) }
	bridge := n.bed.Bridge
	if n.Isolated {
		bridge = n.bed.Inner
	}
	steps := [][]string{
		{"ip", "link", "add", n.Veth, "type", "veth", "peer", "name", "eth0", "netns", n.Name},
		{"ip", "link", "set", n.Veth, "master", bridge},
		{"ip", "link", "set", n.Veth, "up"},
		in("ip", "addr", "add", n.IP+"/24", "dev", "eth0"),
		in("ip", "link", "set", "eth0", "up"),
		in("ip", "link", "set", "lo", "up"),
	}
	switch {
	case n.Isolated:
		steps = append(steps, in("ip", "route", "add", "default", "via", n.bed.Gateway.Inner))
	case n.Inner != "":
		steps = append(steps,
			[]string{"ip", "link", "add", n.InnerVeth, "type", "veth", "peer", "name", "eth1", "netns", n.Name},
			[]string{"ip", "link", "set", n.InnerVeth, "master", n.bed.Inner},
			[]string{"ip", "link", "set", n.InnerVeth, "up"},
			in("ip", "addr", "add", n.Inner+"/24", "dev", "eth1"),
			in("ip", "link", "set", "eth1", "up"),
			in("sysctl", "-qw", "net.ipv4.ip_forward=1"),
			in("nft", "add", "table", "ip", "de_gateway"),
			in("nft", "add", "chain", "ip", "de_gateway", "postrouting", "{ type nat hook postrouting priority srcnat; policy accept; }"),
			in("nft", "add", "rule", "ip", "de_gateway", "postrouting", "ip", "saddr", n.bed.Isolated, "oifname", "eth0", "masquerade"),
		)
	}
	return steps
}

// sshdUp tells whether n's sshd accepts connections: dialled from the
// host, or from inside the node when the host cannot reach it.
func (n *Node) sshdUp() bool {
	if !n.Isolated {
		return dialable(n.IP)
	}
	return exec.Command("ip", "netns", "exec", n.Name, "bash", "-c", "exec 3<>/dev/tcp/"+n.IP+"/22").Run() == nil
}
