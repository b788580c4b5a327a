package contract

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// NotifyConfig is where the engine sends notifications: the config's
// "notify" property or <data>/notify.json.
//
//	{"webhooks": [{"name": "ops", "url": "https://ops.example/hook", "secret": "s3cret",
//	               "events": ["deployment.failed", "heal.*"]},
//	              {"url": "https://hooks.slack.example/T0/B0/x", "format": "slack"}],
//	 "down_after_s": 60}
type NotifyConfig struct {
	Webhooks []Webhook `json:"webhooks"`
	// DownAfterS is how long a component must stay DOWN before
	// component.down is sent (default 60).
	DownAfterS int `json:"down_after_s,omitempty"`
}

// Webhook is one receiver. Events filters by name (a trailing * matches a
// prefix); empty means every event. Format is "json" (the default) or
// "slack" ({"text": ...}). Secret signs each body: the header
// X-DE-Signature carries "sha256=" and the hex HMAC-SHA256 of the body.
// A slack-format URL is a secret too: it is redacted like Secret.
type Webhook struct {
	Name   string   `json:"name,omitempty"`
	URL    string   `json:"url"`
	Secret string   `json:"secret,omitempty"`
	Format string   `json:"format,omitempty"`
	Events []string `json:"events,omitempty"`
}

// Notification is the JSON body a webhook receives.
//
//	{"v": 1, "event": "deployment.failed", "time": "...", "summary": "deployment d-1 failed: 1 step(s) failed",
//	 "subject": "de.evt.deploy.d-1.finished", "data": {...the event...}}
type Notification struct {
	V       int    `json:"v"`
	Event   string `json:"event"`
	Time    string `json:"time"`
	Summary string `json:"summary"`
	Subject string `json:"subject"`
	Data    any    `json:"data"`
}

// WebhookAllowFlag is the serve flag that opens networks to webhooks.
const WebhookAllowFlag = "--webhook-allow"

// ErrWebhookAddress is why a webhook's address is refused.
var ErrWebhookAddress = errors.New("webhook address refused")

// WebhookPolicy says which addresses a webhook may reach. A webhook is an
// HTTP POST the engine makes on a token holder's word, so by default it may
// not reach the engine's own machine or what only that machine reaches:
// loopback (monit's 127.0.0.1:2812), link-local (169.254.0.0/16, the cloud's
// metadata service; fe80::/10), unspecified, multicast and broadcast
// addresses and the engine's own. Allow opens networks explicitly: serve's
// --webhook-allow, the operator's choice, never the config's.
type WebhookPolicy struct {
	Allow []netip.Prefix
	// Own lists the engine's own addresses (nil: this machine's interface
	// addresses, read at each check).
	Own func() []netip.Addr
}

// CheckAddr says why a webhook may not reach ip, or nil when it may.
func (p WebhookPolicy) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap().WithZone("")
	for _, n := range p.Allow {
		if n.Contains(ip) {
			return nil
		}
	}
	var what string
	switch {
	case ip.IsLoopback():
		what = "a loopback address"
	case ip.IsLinkLocalUnicast():
		what = "a link-local address"
	case ip.IsUnspecified() || (ip.Is4() && ip.As4()[0] == 0):
		what = "an unspecified address"
	case ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		what = "a multicast or broadcast address"
	case p.own(ip):
		what = "one of the engine's own addresses"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s is %s; allow its network with serve %s", ErrWebhookAddress, ip, what, WebhookAllowFlag)
}

func (p WebhookPolicy) own(ip netip.Addr) bool {
	var own []netip.Addr
	if p.Own != nil {
		own = p.Own()
	} else {
		own = InterfaceAddrs()
	}
	for _, a := range own {
		if a.Unmap().WithZone("") == ip {
			return true
		}
	}
	return false
}

// CheckURL says why raw is not a webhook URL the engine posts to: not
// http(s), no host, or a literal address CheckAddr refuses. A host name
// passes: its addresses are checked when it is dialled.
func (p WebhookPolicy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return errors.New("must be an http:// or https:// URL")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
		return p.CheckAddr(ip)
	}
	return nil
}

// InterfaceAddrs are this machine's addresses (none when they cannot be
// read).
func InterfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

// ParseNetworks reads a comma-separated list of CIDRs or single addresses
// (a /32 or /128), as --webhook-allow takes them.
func ParseNetworks(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if ip, err := netip.ParseAddr(f); err == nil {
			out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		n, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a network: want a CIDR like 127.0.0.0/8 or an address", f)
		}
		if n.Addr().Is4In6() && n.Bits() >= 96 {
			n = netip.PrefixFrom(n.Addr().Unmap(), n.Bits()-96)
		}
		out = append(out, n.Masked())
	}
	return out, nil
}
