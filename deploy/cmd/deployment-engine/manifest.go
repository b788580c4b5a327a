package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/deployment-engine/engine/planner/manifest"
)

func init() { commands["manifest"] = manifestCmd }

const manifestUsage = "usage: deployment-engine manifest interpolate FILE [-o|--ops-file OPS]... [-v|--var NAME=VALUE]... [-l|--vars-file VARS]... [--vars-store FILE] [--var-errs] [--path POINTER]"

// listFlag collects a flag given several times, in order.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// manifestCmd: manifest interpolate prints a BOSH deployment manifest as
// a deploy would read it — its ops files applied in order, then its
// variables — as `bosh interpolate` does; no engine needs to run.
func manifestCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "interpolate" {
		fmt.Fprintln(stderr, manifestUsage)
		return 2
	}
	fs := flag.NewFlagSet("manifest interpolate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var opsFiles, varFiles, varFlags listFlag
	for _, n := range []string{"o", "ops-file"} {
		fs.Var(&opsFiles, n, "an ops file, applied in the order given (repeatable)")
	}
	for _, n := range []string{"l", "vars-file"} {
		fs.Var(&varFiles, n, "a YAML file of variables (repeatable; a later one wins)")
	}
	for _, n := range []string{"v", "var"} {
		fs.Var(&varFlags, n, "a variable as NAME=VALUE, a string (repeatable; wins over -l)")
	}
	store := fs.String("vars-store", "", "a YAML file of variables that keeps those it generates: each variable the manifest declares (password, certificate, rsa, ssh) and nothing gives is generated once and written there (mode 0600)")
	varErrs := fs.Bool("var-errs", false, "a variable without a value is an error (exit 1) rather than a warning")
	path := fs.String("path", "", "print only the value at this pointer (/instance_groups/name=web/instances)")
	file, rest := "", args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		file, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if fs.NArg() != 0 || file == "" {
		fmt.Fprintln(stderr, manifestUsage)
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "manifest interpolate: %v\n", err)
		return 1
	}
	vars, stored := manifest.Vars{}, manifest.Vars{}
	if *store != "" {
		data, err := os.ReadFile(*store)
		if err != nil && !os.IsNotExist(err) {
			return fail(err)
		}
		if err := stored.Load(manifest.File{Name: *store, Data: data}); err != nil {
			return fail(err)
		}
		for k, v := range stored {
			vars[k] = v
		}
	}
	for _, f := range varFiles {
		data, err := readInput(f)
		if err != nil {
			return fail(err)
		}
		if err := vars.Load(manifest.File{Name: f, Data: data}); err != nil {
			return fail(err)
		}
	}
	// -v wins over -l whatever the order on the line, as in the BOSH CLI.
	for _, kv := range varFlags {
		if err := vars.Set(kv); err != nil {
			return fail(err)
		}
	}
	data, err := readInput(file)
	if err != nil {
		return fail(err)
	}
	var ops []manifest.File
	for _, f := range opsFiles {
		b, err := readInput(f)
		if err != nil {
			return fail(err)
		}
		ops = append(ops, manifest.File{Name: f, Data: b})
	}
	doc, err := manifest.Patch(manifest.File{Name: file, Data: data}, ops)
	if err != nil {
		return fail(err)
	}
	if *store != "" {
		if err := generate(doc, vars, stored, *store); err != nil {
			return fail(err)
		}
	}
	doc, missing, err := manifest.Interpolate(doc, vars)
	if err != nil {
		return fail(err)
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("no value for %d variable(s): %s (give them with -v NAME=VALUE or -l FILE)", len(missing), strings.Join(missing, ", "))
		if *varErrs {
			return fail(fmt.Errorf("%s", msg))
		}
		fmt.Fprintf(stderr, "warning: %s\n", msg)
	}
	if *path != "" {
		if doc, err = manifest.Find(doc, *path); err != nil {
			return fail(err)
		}
	}
	out, err := manifest.Marshal(doc)
	if err != nil {
		return fail(err)
	}
	_, _ = stdout.Write(out)
	return 0
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
