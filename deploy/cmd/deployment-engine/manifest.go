package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/deployment-engine/engine/planner/manifest"
)

func init() { commands["manifest"] = manifestCmd }

const manifestUsage = `usage: deployment-engine manifest interpolate FILE [-o|--ops-file OPS]... [-v|--var NAME=VALUE]... [-l|--vars-file VARS]... [--vars-store FILE] [--var-errs] [--path POINTER]
       deployment-engine manifest config FILE [the same -o, -v, -l, --vars-store] --home IP [--key PATH] [--domain D] [--user U]
         (the config of catalog bosh that deploys the manifest; the nodes' root password, if no key, from DE_ROOT_PASSWORD)
       deployment-engine manifest deploy FILE [-o OPS]... [-v NAME=VALUE]... [-l VARS]... [--check=false] [--follow] [--json]
         (deploys it on the cloud config's machines: the engine applies the ops, generates the variables once, places the instances;
          without --cluster, into the cluster of the manifest's name if there is one, else the default cluster)
       deployment-engine manifest variables [regenerate NAME] [--json]
         (the variables the engine generated, never a value; regenerate marks one, with the certificates it signs, for the next deploy)`

// listFlag collects a flag given several times, in order.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// manifestFlags are what both subcommands read a manifest with.
type manifestFlags struct {
	file                        string
	ops, varFiles, vars         listFlag
	store, path                 string
	varErrs                     bool
	home, key, domain, userName string
}

// manifestCmd: manifest interpolate prints a BOSH deployment manifest as
// a deploy would read it — its ops files applied in order, then its
// variables — as `bosh interpolate` does; manifest config prints the
// engine's config that deploys it. No engine needs to run.
func manifestCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "deploy" {
		return manifestDeploy(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "variables" {
		return clientCommand("manifest variables", manifestVariablesCmd)(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "interpolate" && args[0] != "config") {
		fmt.Fprintln(stderr, manifestUsage)
		return exitUsage
	}
	sub := args[0]
	f, ok := parseManifestFlags(sub, args[1:], stderr)
	if !ok {
		fmt.Fprintln(stderr, manifestUsage)
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "manifest %s: %v\n", sub, err)
		return exitFailed
	}
	if sub == "config" && f.home == "" {
		return fail(errors.New("--home is needed: the engine's address as the machines see it"))
	}
	doc, missing, err := f.build()
	if err != nil {
		return fail(err)
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("no value for %d variable(s): %s (give them with -v NAME=VALUE, -l FILE or --vars-store FILE)", len(missing), strings.Join(missing, ", "))
		if f.varErrs || sub == "config" {
			return fail(errors.New(msg))
		}
		fmt.Fprintf(stderr, "warning: %s\n", msg)
	}
	var out []byte
	if sub == "config" {
		cfg, warnings, err := manifest.ToConfig(doc, manifest.Target{Home: f.home, Key: f.key, Domain: f.domain, User: f.userName, Root: os.Getenv("DE_ROOT_PASSWORD")})
		if err != nil {
			return fail(err)
		}
		for _, w := range warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		if out, err = json.MarshalIndent(cfg, "", "  "); err != nil {
			return fail(err)
		}
		out = append(out, '\n')
	} else {
		if f.path != "" {
			if doc, err = manifest.Find(doc, f.path); err != nil {
				return fail(err)
			}
		}
		if out, err = manifest.Marshal(doc); err != nil {
			return fail(err)
		}
	}
	_, _ = stdout.Write(out)
	return exitOK
}

func parseManifestFlags(sub string, args []string, stderr io.Writer) (*manifestFlags, bool) {
	f := &manifestFlags{}
	fs := flag.NewFlagSet("manifest "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, n := range []string{"o", "ops-file"} {
		fs.Var(&f.ops, n, "an ops file, applied in the order given (repeatable)")
	}
	for _, n := range []string{"l", "vars-file"} {
		fs.Var(&f.varFiles, n, "a YAML file of variables (repeatable; a later one wins)")
	}
	for _, n := range []string{"v", "var"} {
		fs.Var(&f.vars, n, "a variable as NAME=VALUE, a string (repeatable; wins over -l)")
	}
	fs.StringVar(&f.store, "vars-store", "", "a YAML file of variables that keeps those it generates: each variable the manifest declares (password, certificate, rsa, ssh) and nothing gives is generated once and written there (mode 0600)")
	if sub == "interpolate" {
		fs.BoolVar(&f.varErrs, "var-errs", false, "a variable without a value is an error (exit 1) rather than a warning")
		fs.StringVar(&f.path, "path", "", "print only the value at this pointer (/instance_groups/name=web/instances)")
	} else {
		fs.StringVar(&f.home, "home", "", "the engine's address as the machines see it (the config's home)")
		fs.StringVar(&f.key, "key", "", "the path of root's SSH private key on this machine")
		fs.StringVar(&f.domain, "domain", "", "the config's domain (the manifest's name when absent)")
		fs.StringVar(&f.userName, "user", "", "the config's user")
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		f.file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	if f.file == "" && fs.NArg() == 1 {
		f.file = fs.Arg(0)
	} else if fs.NArg() != 0 || f.file == "" {
		return nil, false
	}
	return f, true
}

// build reads the files and builds the manifest: ops applied, variables
// generated into the store when there is one, then interpolated.
func (f *manifestFlags) build() (any, []string, error) {
	vars, stored, err := f.loadVars()
	if err != nil {
		return nil, nil, err
	}
	data, err := readInput(f.file)
	if err != nil {
		return nil, nil, err
	}
	var ops []manifest.File
	for _, name := range f.ops {
		b, err := readInput(name)
		if err != nil {
			return nil, nil, err
		}
		ops = append(ops, manifest.File{Name: name, Data: b})
	}
	doc, err := manifest.Patch(manifest.File{Name: f.file, Data: data}, ops)
	if err != nil {
		return nil, nil, err
	}
	if f.store != "" {
		if err := generate(doc, vars, stored, f.store); err != nil {
			return nil, nil, err
		}
	}
	return manifest.Interpolate(doc, vars)
}

// loadVars reads the store, then -l files, then -v flags: -v wins over
// -l whatever the order on the line, as in the BOSH CLI. stored is the
// store's own content.
func (f *manifestFlags) loadVars() (vars, stored manifest.Vars, err error) {
	vars, stored = manifest.Vars{}, manifest.Vars{}
	if f.store != "" {
		data, err := os.ReadFile(f.store)
		if err != nil && !os.IsNotExist(err) {
			return nil, nil, err
		}
		if err := stored.Load(manifest.File{Name: f.store, Data: data}); err != nil {
			return nil, nil, err
		}
		for k, v := range stored {
			vars[k] = v
		}
	}
	for _, name := range f.varFiles {
		data, err := readInput(name)
		if err != nil {
			return nil, nil, err
		}
		if err := vars.Load(manifest.File{Name: name, Data: data}); err != nil {
			return nil, nil, err
		}
	}
	for _, kv := range f.vars {
		if err := vars.Set(kv); err != nil {
			return nil, nil, err
		}
	}
	return vars, stored, nil
}

// generate gives the manifest's declared variables that nothing gave a
// value, and writes them to the store beside what it held.
func generate(doc any, vars, stored manifest.Vars, path string) error {
	decl, err := manifest.Variables(doc)
	if err != nil {
		return err
	}
	made, err := manifest.Generate(decl, vars)
	if err != nil {
		return err
	}
	if len(made) == 0 {
		return nil
	}
	for _, n := range made {
		stored[n] = vars[n]
	}
	out, err := manifest.Marshal(map[string]any(stored))
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readInput reads a file, or standard input for "-", up to
// manifest.MaxFile.
func readInput(name string) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, manifest.MaxFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(b) > manifest.MaxFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, manifest.MaxFile)
	}
	return b, nil
}
