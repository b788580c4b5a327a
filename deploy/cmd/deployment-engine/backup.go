package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/deployment-engine/engine/deploy/engine"
)

func init() {
	commands["backup"] = backupCmd
	commands["restore"] = restoreCmd
}

const backupUsage = `usage: deployment-engine backup FILE [--data DIR | --nats URL]
       deployment-engine restore FILE [--data DIR | --nats URL]
With --data (default ./data) the engine must be stopped; with --nats it works on that NATS server.`

func storeFlags(name string, args []string, stderr io.Writer) (string, engine.StoreAccess, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var a engine.StoreAccess
	fs.StringVar(&a.DataDir, "data", "./data", "the engine's data directory (its embedded store)")
	fs.StringVar(&a.NATSURL, "nats", "", "an external NATS server the engine runs on, instead of --data")
	// FILE may come before or after the flags.
	var file string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return "", a, false
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if fs.NArg() != 0 {
		file = ""
	}
	if file == "" {
		fmt.Fprintln(stderr, backupUsage)
		return "", a, false
	}
	return file, a, true
}

// backupCmd writes the engine's streams and buckets to FILE.
func backupCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	file, a, ok := storeFlags("backup", args, stderr)
	if !ok {
		return 2
	}
	tmp := file + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		fmt.Fprintf(stderr, "backup: %v\n", err)
		return 1
	}
	streams, err := engine.Backup(ctx, a, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		fmt.Fprintf(stderr, "backup: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "backed up %s to %s\n", strings.Join(streams, ", "), file)
	return 0
}

// restoreCmd puts FILE's streams and buckets back, all or none.
func restoreCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	file, a, ok := storeFlags("restore", args, stderr)
	if !ok {
		return 2
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(stderr, "restore: %v\n", err)
		return 1
	}
	defer f.Close()
	streams, err := engine.Restore(ctx, a, f)
	if err != nil {
		fmt.Fprintf(stderr, "restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %s from %s\n", strings.Join(streams, ", "), file)
	return 0
}
