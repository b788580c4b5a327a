package catalog

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Health is a component's own health check, beside monit's word: an HTTP
// URL that must answer 2xx or 3xx, a TCP host:port that must accept, or a
// command that must exit 0. Each is a template ({{.Node}} is the instance's
// IP).
type Health struct {
	HTTP    string `json:"http,omitempty"`
	TCP     string `json:"tcp,omitempty"`
	Command string `json:"command,omitempty"`
}

// Check is a rendered health check.
type Check struct {
	// HTTPHost, HTTPPort, HTTPPath: the HTTP probe, when set.
	HTTPHost, HTTPPort, HTTPPath string
	// TCPHost, TCPPort: the TCP probe, when set.
	TCPHost, TCPPort string
	Command          string
}

// RenderHealth renders the health check of one component instance; nil
// when the component has none.
func (c *Catalog) RenderHealth(in Input) (*Check, error) {
	comp, ok := c.Components[in.Component]
	if !ok {
		return nil, fmt.Errorf("catalog %s has no component %q", c.Name, in.Component)
	}
	h := comp.Health
	if h == nil {
		return nil, nil
	}
	d := c.data(in)
	run := func(i int, t string) (string, error) {
		if t == "" {
			return "", nil
		}
		var b bytes.Buffer
		if err := c.templates.ExecuteTemplate(&b, fmt.Sprintf("health.%s.%d", in.Component, i), d); err != nil {
			return "", fmt.Errorf("render the health check of %s: %w", in.Component, err)
		}
		return strings.TrimSpace(b.String()), nil
	}
	out := &Check{}
	httpURL, err := run(0, h.HTTP)
	if err != nil {
		return nil, err
	}
	if httpURL != "" {
		u, err := url.Parse(httpURL)
		if err != nil || u.Scheme != "http" || u.Hostname() == "" {
			return nil, fmt.Errorf("health check of %s: %q is no http:// URL", in.Component, httpURL)
		}
		out.HTTPHost, out.HTTPPort, out.HTTPPath = u.Hostname(), u.Port(), u.RequestURI()
		if out.HTTPPort == "" {
			out.HTTPPort = "80"
		}
	}
	tcp, err := run(1, h.TCP)
	if err != nil {
		return nil, err
	}
	if tcp != "" {
		host, port, err := net.SplitHostPort(tcp)
		if err != nil {
			return nil, fmt.Errorf("health check of %s: %q is no host:port", in.Component, tcp)
		}
		out.TCPHost, out.TCPPort = host, port
	}
	if out.Command, err = run(2, h.Command); err != nil {
		return nil, err
	}
	return out, nil
}

// Balancer is a component that takes instances of another out of service
// before they change: its instances run Drain before, Ready after.
type Balancer struct {
	Component string
	Drain     string
	Ready     string
}

// Balancers lists the components that balance comp (they name it in
// reconfigure_on and have drain and ready templates).
func (c *Catalog) Balancers(comp string) []string {
	var out []string
	for _, name := range c.Order {
		b := c.Components[name]
		if b.Drain == "" {
			continue
		}
		for _, r := range b.ReconfigureOn {
			if r == comp {
				out = append(out, name)
			}
		}
	}
	return out
}

// RenderBalance renders balancer in.Component's drain and ready scripts for
// the instance at index idx (IP target) of component targetComp.
func (c *Catalog) RenderBalance(in Input, targetComp, target string, idx int) (*Balancer, error) {
	comp, ok := c.Components[in.Component]
	if !ok || comp.Drain == "" {
		return nil, fmt.Errorf("catalog %s: %q balances nothing", c.Name, in.Component)
	}
	d := c.data(in)
	d.Target, d.TargetIndex, d.TargetComponent = target, idx, targetComp
	out := &Balancer{Component: in.Component}
	for _, p := range []struct {
		dst  *string
		name string
	}{{&out.Drain, comp.Drain}, {&out.Ready, comp.Ready}} {
		var b bytes.Buffer
		if err := c.templates.ExecuteTemplate(&b, p.name, d); err != nil {
			return nil, fmt.Errorf("render %s of %s: %w", p.name, in.Component, err)
		}
		*p.dst = b.String()
	}
	return out, nil
}
