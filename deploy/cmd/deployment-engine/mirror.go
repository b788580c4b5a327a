package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/mirror"
)

func init() { commands["mirror"] = mirrorCmd }

// mirrorCmd fills <data>/mirror with the packages a catalog needs (sync),
// or adds package files to it, or removes packages from it.
func mirrorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	const usage = "usage: deployment-engine mirror sync [--catalog NAME] [--catalog-dir DIR] [--data DIR]\n" +
		"       deployment-engine mirror add [--data DIR] FILE.deb...\n" +
		"       deployment-engine mirror remove [--data DIR] PACKAGE..."
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	switch args[0] {
	case "sync":
		return mirrorSync(ctx, args[1:], stdout, stderr)
	case "add", "remove":
		return mirrorEdit(ctx, args[0], args[1:], stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return 2
}

func mirrorSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mirror sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("catalog", "starter", "the catalog whose packages to gather")
	dir := fs.String("catalog-dir", "", "catalogs from this directory instead of the embedded ones")
	data := fs.String("data", "./data", "the engine's data directory; the mirror is <data>/mirror")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cat, err := catalog.Load(*name, *dir)
	if err != nil {
		fmt.Fprintf(stderr, "mirror sync: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	dst := filepath.Join(*data, "mirror")
	if err := mirror.Sync(ctx, cat, dst, log); err != nil {
		fmt.Fprintf(stderr, "mirror sync: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "mirror ready in %s\n", dst)
	return 0
}

// mirrorEdit adds package files to the mirror, or removes packages from
// it, and indexes it again: the nodes see the change at their next apt
// update (a deploy's mirror step, a patch).
func mirrorEdit(ctx context.Context, verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mirror "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./data", "the engine's data directory; the mirror is <data>/mirror")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		fmt.Fprintf(stderr, "mirror %s: %v\n", verb, err)
		return 2
	}
	if len(pos) == 0 {
		fmt.Fprintf(stderr, "mirror %s: name at least one %s\n", verb, map[string]string{"add": "package file", "remove": "package"}[verb])
		return 2
	}
	dst := filepath.Join(*data, "mirror")
	if _, err := os.Stat(filepath.Join(dst, "Packages")); err != nil {
		fmt.Fprintf(stderr, "mirror %s: %s holds no mirror: run `deployment-engine mirror sync --data %s` first\n", verb, dst, *data)
		return 1
	}
	edit, done := mirror.Add, "added"
	if verb == "remove" {
		edit, done = mirror.Remove, "removed"
	}
	files, err := edit(ctx, dst, pos)
	for _, f := range files {
		fmt.Fprintf(stdout, "%s %s\n", done, f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mirror %s: %v\n", verb, err)
		return 1
	}
	if len(files) == 0 {
		fmt.Fprintf(stdout, "no such package in %s\n", dst)
	}
	return 0
}
