package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["cloud-config"] = clientCommand("cloud-config", cloudConfigCmd) }

// cloudConfigCmd: cloud-config (prints it) | cloud-config update FILE.
func cloudConfigCmd(ctx context.Context, s *session) int {
	switch {
	case len(s.args) == 0:
		if code := s.connect(); code != exitOK {
			return code
		}
		cc, raw, err := s.c.CloudConfig(ctx)
		if client.StatusOf(err) == 404 {
			fmt.Fprintln(s.stderr, "cloud-config: none stored yet; store one with: deployment-engine cloud-config update FILE")
			return exitFailed
		}
		return s.answer(raw, err, func() { printCloudConfig(s.stdout, cc) })
	case s.args[0] == "update" && len(s.args) == 2:
		body, err := readArg(s.args[1])
		if err != nil {
			return s.usage("%v", err)
		}
		if code := s.connect(); code != exitOK {
			return code
		}
		cc, raw, err := s.c.PutCloudConfig(ctx, body)
		return s.answer(raw, err, func() {
			n := 0
			for _, az := range cc.AZs {
				n += len(az.Machines)
			}
			fmt.Fprintf(s.stdout, "cloud config stored: %d machines in %d zones\n", n, len(cc.AZs))
		})
	}
	return s.usage("cloud-config prints it; cloud-config update FILE (YAML or JSON, - for stdin) stores one")
}

// printCloudConfig prints cc as YAML, in the shape it is given in.
func printCloudConfig(w io.Writer, cc contract.CloudConfig) {
	fmt.Fprintf(w, "home: %s\n", cc.Home)
	if cc.SSH != (contract.CloudSSH{}) {
		fmt.Fprintf(w, "ssh: {user: %s, key: %s}\n", cc.SSH.User, cc.SSH.Key)
	}
	fmt.Fprintln(w, "azs:")
	for _, az := range cc.AZs {
		var ms []string
		for _, m := range az.Machines {
			if m.User == "" && m.Key == "" {
				ms = append(ms, m.IP)
				continue
			}
			ms = append(ms, fmt.Sprintf("{ip: %s, user: %s, key: %s}", m.IP, m.User, m.Key))
		}
		fmt.Fprintf(w, "- name: %s\n  machines: [%s]\n", az.Name, strings.Join(ms, ", "))
	}
	if len(cc.Disks) > 0 {
		fmt.Fprintln(w, "disks:")
		ips := make([]string, 0, len(cc.Disks))
		for ip := range cc.Disks {
			ips = append(ips, ip)
		}
		sort.Strings(ips)
		for _, ip := range ips {
			fmt.Fprintf(w, "  %s: %s\n", ip, cc.Disks[ip])
		}
	}
}

// manifestVariablesCmd: manifest variables lists the variables the engine
// generated for the manifest; manifest variables regenerate NAME marks one
// to be generated anew at the next manifest deploy.
func manifestVariablesCmd(ctx context.Context, s *session) int {
	switch {
	case len(s.args) == 0:
		if code := s.connect(); code != exitOK {
			return code
		}
		l, raw, err := s.c.ManifestVariables(ctx)
		return s.answer(raw, err, func() {
			if len(l.Variables) == 0 {
				fmt.Fprintln(s.stdout, "the engine generated no variable for the manifest")
				return
			}
			tw := tabwriter.NewWriter(s.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tCA\tGENERATED\tNEXT DEPLOY")
			for _, v := range l.Variables {
				gen, next := "-", "keeps it"
				if v.Generated != nil {
					gen = v.Generated.Format(time.RFC3339)
				}
				if v.Regenerate {
					next = "generates it anew"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, dash(v.Type), dash(v.CA), gen, next)
			}
			_ = tw.Flush()
		})
	case s.args[0] == "regenerate" && len(s.args) == 2:
		if code := s.connect(); code != exitOK {
			return code
		}
		out, raw, err := s.c.RegenerateVariable(ctx, s.args[1])
		return s.answer(raw, err, func() {
			fmt.Fprintf(s.stdout, "%s of manifest %s is generated anew at the next manifest deploy", out.Name, out.Manifest)
			if len(out.With) > 0 {
				fmt.Fprintf(s.stdout, ", with the certificates it signs: %s", strings.Join(out.With, ", "))
			}
			fmt.Fprintln(s.stdout)
		})
	}
	return s.usage("manifest variables lists them; manifest variables regenerate NAME marks one for the next deploy")
}

// manifestDeploy: manifest deploy FILE [-o OPS]... [-v NAME=VALUE]...
// [-l VARS]... [--check=false] [--follow]: the files are read here and
// sent whole; the engine applies the ops, generates the variables the
// manifest declares and nothing gives, and places the instances.
func manifestDeploy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s := &session{name: "manifest deploy", stdout: stdout, stderr: stderr}
	f := &manifestFlags{}
	fs, data, server, help := clientFlags(s)
	for _, n := range []string{"o", "ops-file"} {
		fs.Var(&f.ops, n, "an ops file, applied in the order given (repeatable)")
	}
	for _, n := range []string{"l", "vars-file"} {
		fs.Var(&f.varFiles, n, "a YAML file of variables (repeatable; a later one wins)")
	}
	for _, n := range []string{"v", "var"} {
		fs.Var(&f.vars, n, "a variable as NAME=VALUE (repeatable; wins over -l)")
	}
	pos, err := parseInterleaved(fs, args)
	if *help {
		fmt.Fprintln(stdout, manifestUsage)
		return exitOK
	}
	if err != nil || len(pos) != 1 {
		fmt.Fprintf(stderr, "manifest deploy: want one manifest FILE\n%s\n", manifestUsage)
		return exitUsage
	}
	s.data, s.server, f.file = *data, *server, pos[0]
	in, err := f.request()
	if err != nil {
		fmt.Fprintf(stderr, "manifest deploy: %v\n", err)
		return exitFailed
	}
	if code := s.connect(); code != exitOK {
		return code
	}
	if s.c.Cluster == "" {
		s.c.Cluster = clusterOfManifest(ctx, s, in)
	}
	out, raw, err := s.c.DeployManifest(ctx, in, s.check)
	if err != nil {
		return s.fail(err)
	}
	if !s.json {
		for _, g := range sortedKeysOf(out.Placement) {
			fmt.Fprintf(stdout, "%s: %s\n", g, strings.Join(out.Placement[g], ", "))
		}
		for _, w := range out.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	return s.started(ctx, out.ID, raw)
}

// clusterOfManifest is the cluster a manifest deploys into when neither
// --cluster nor DE_CLUSTER names one: the cluster of its name (after its
// ops files), as a BOSH deployment is its manifest's name, when the
// engine has one; else the default cluster, as before clusters had names.
// Which one it is, is said on stderr.
func clusterOfManifest(ctx context.Context, s *session, in contract.ManifestDeploy) string {
	files := make([]manifest.File, len(in.Ops))
	for i, o := range in.Ops {
		files[i] = manifest.File{Name: fmt.Sprintf("ops file %d", i+1), Data: []byte(o)}
	}
	doc, err := manifest.Patch(manifest.File{Name: "the manifest", Data: []byte(in.Manifest)}, files)
	root, _ := doc.(map[string]any)
	name, _ := root["name"].(string)
	if err != nil || name == "" || contract.CheckClusterName(name) != nil || name == contract.DefaultCluster {
		return "" // the engine says what is wrong with it, if anything
	}
	clusters, _, err := s.c.Clusters(ctx)
	if err != nil {
		return ""
	}
	for _, c := range clusters {
		if c.Name == name {
			fmt.Fprintf(s.stderr, "manifest %s: deploying into cluster %s, of its name\n", name, name)
			return name
		}
	}
	fmt.Fprintf(s.stderr, "manifest %s: deploying into the default cluster (no cluster is named %s: deployment-engine clusters create %s makes one)\n", name, name, name)
	return ""
}

// request reads the manifest, its ops files and the variables given.
func (f *manifestFlags) request() (contract.ManifestDeploy, error) {
	var in contract.ManifestDeploy
	b, err := readInput(f.file)
	if err != nil {
		return in, err
	}
	in.Manifest = string(b)
	for _, name := range f.ops {
		b, err := readInput(name)
		if err != nil {
			return in, err
		}
		in.Ops = append(in.Ops, string(b))
	}
	vars, _, err := f.loadVars()
	if err != nil {
		return in, err
	}
	if len(vars) > 0 {
		in.Vars = vars
	}
	return in, nil
}

func sortedKeysOf(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
