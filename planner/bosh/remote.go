package bosh

import (
	"fmt"
	"slices"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// RemoteProvider is a link another deployment (another cluster of the
// engine) provides, as a consumer there sees it: BOSH's cross-deployment
// link. Only a shared provider carries its instances and properties; one
// not shared is listed by name alone, so that a consumer asking for it is
// told to share it, and learns nothing more of it.
type RemoteProvider struct {
	Deployment string `json:"deployment"`
	Job        string `json:"job"`
	// Link is the link's name in the job's spec (or its custom
	// provider's); Name the name consumers' from finds it by: its alias,
	// else Link.
	Link   string `json:"link"`
	Name   string `json:"name"`
	Type   string `json:"type"`
	Shared bool   `json:"shared"`
	// Instances are what link().instances gives: name, index, id, az,
	// address, bootstrap.
	Instances []map[string]any `json:"instances,omitempty"`
	// Properties are those the link shares, as its job's spec and
	// properties give them on its first instance.
	Properties map[string]any `json:"properties,omitempty"`
	// Secrets are the values among Properties that are secrets where they
	// come from: a consumer's plans and answers redact them.
	Secrets []string `json:"-"`
}

func (r RemoteProvider) String() string {
	s := r.Job + "." + r.Link
	if r.Name != r.Link {
		s += " as " + r.Name
	}
	return s
}

// Remote reads the providers of another deployment by its name (a cluster
// of the engine); an error says why there are none to read (no such
// cluster, nothing deployed there, an engine that cannot reach other
// clusters), naming what there is instead.
type Remote func(deployment string) ([]RemoteProvider, error)

// Placing is what NewDeploymentWith needs beside a release and a config.
type Placing struct {
	// JobOf names each component's job, when they differ (nil: the same).
	JobOf func(comp string) string
	// Remote reads other deployments' providers; nil refuses every link
	// consumed from another deployment.
	Remote Remote
	// NoRemote says why Remote is nil, for the problem that refuses such a
	// link.
	NoRemote string
	// Self is this cluster's name: a link from a deployment of that name
	// (or of the deployment's own name) is a local one.
	Self string
}

// SharedProviders are the links this deployment offers to others: every
// provider, each shared one with its instances, properties and the
// secrets among them (secrets lists the config's secret values: those a
// shared property holds are named too).
func (d *Deployment) SharedProviders(secrets []string) []RemoteProvider {
	var out []RemoteProvider
	for _, p := range d.allProviders() {
		w := d.Links[p.Job].Provides[p.Link.Name]
		r := RemoteProvider{Deployment: d.Name, Job: p.Job, Link: p.Link.Name, Name: p.Name, Type: p.Link.Type, Shared: w != nil && w.Shared}
		if r.Shared {
			l := d.linkOf(p)
			r.Instances, _ = l["instances"].([]map[string]any)
			r.Properties, _ = l["properties"].(map[string]any)
			r.Secrets = secretLeaves(r.Properties, false, secrets, nil)
		}
		out = append(out, r)
	}
	return out
}

// secretLeaves lists the values of tree that are secrets: a leaf under a
// name like a secret's (password, secret, token, ...), and each of
// secrets that a string leaf holds.
func secretLeaves(v any, secret bool, secrets, out []string) []string {
	switch t := v.(type) {
	case map[string]any:
		for _, k := range contract.SortedKeys(t) {
			out = secretLeaves(t[k], secret || contract.SecretName(k), secrets, out)
		}
		return out
	case []any:
		for _, x := range t {
			out = secretLeaves(x, secret, secrets, out)
		}
		return out
	case nil:
		return out
	}
	s := fmt.Sprint(v)
	if secret && s != "" && !slices.Contains(out, s) {
		out = append(out, s)
	}
	for _, x := range secrets {
		if x != "" && strings.Contains(s, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// RemoteSecrets are the secret values of the links the deployment takes
// from other deployments: its redactions must take them out too.
func (d *Deployment) RemoteSecrets() []string {
	var out []string
	for _, job := range contract.SortedKeys(d.resolved) {
		for _, name := range contract.SortedKeys(d.resolved[job]) {
			if r := d.resolved[job][name].Remote; r != nil {
				out = append(out, r.Secrets...)
			}
		}
	}
	return out
}

// local tells whether a consumed link's deployment is this one.
func (d *Deployment) local(dep string) bool {
	return dep == "" || dep == d.Name || dep == d.self
}

// resolveRemote finds the provider of job's link l among what deployment
// w.Deployment shares: the one of l's type that w.From names (by alias or
// name), or the one of its type when w.From is empty. It returns the
// problem's reason when there is none, or several.
func (d *Deployment) resolveRemote(job, link, typ string, w *contract.ConsumeLink) (provider, string) {
	dep := w.Deployment
	what := fmt.Sprintf("job %s consumes link %q of type %s from deployment %s", job, link, typ, dep)
	if w.From != "" {
		what = fmt.Sprintf("job %s consumes link %q of type %s from %q of deployment %s", job, link, typ, w.From, dep)
	}
	if d.remote == nil {
		return provider{}, what + ", and " + d.noRemote
	}
	if d.remoteCache == nil {
		d.remoteCache = map[string]remoteRead{}
	}
	read, ok := d.remoteCache[dep]
	if !ok {
		read.ps, read.err = d.remote(dep)
		d.remoteCache[dep] = read
	}
	if read.err != nil {
		return provider{}, what + ", and " + read.err.Error()
	}
	var fits, notShared, shared []RemoteProvider
	for _, r := range read.ps {
		named := w.From == "" || r.Name == w.From
		switch {
		case r.Shared:
			shared = append(shared, r)
			if named && r.Type == typ {
				fits = append(fits, r)
			}
		case named && r.Type == typ:
			notShared = append(notShared, r)
		}
	}
	switch {
	case len(fits) == 1:
		r := fits[0]
		return provider{Job: r.Job, Name: r.Name, Remote: &r}, ""
	case len(fits) > 1 && w.From != "":
		return provider{}, fmt.Sprintf("%s, and several of its shared links are called that (%s): give each its own alias with provides.<link>.as in %s's manifest",
			what, joinRemote(fits), dep)
	case len(fits) > 1:
		return provider{}, fmt.Sprintf("%s, and several of its shared links are of that type (%s): name one with consumes.%s.from",
			what, joinRemote(fits), link)
	case len(notShared) > 0:
		return provider{}, fmt.Sprintf("%s, and %s there is not shared: add shared: true to its provides.%s in %s's manifest (it shares %s)",
			what, joinRemote(notShared), notShared[0].Link, dep, orNoneRemote(shared))
	}
	return provider{}, fmt.Sprintf("%s, and no link it shares fits (it shares %s)", what, orNoneRemote(shared))
}

type remoteRead struct {
	ps  []RemoteProvider
	err error
}

func joinRemote(rs []RemoteProvider) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String() + " (" + r.Type + ")"
	}
	return strings.Join(s, ", ")
}

func orNoneRemote(rs []RemoteProvider) string {
	if len(rs) == 0 {
		return "none"
	}
	return joinRemote(rs)
}
