package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/mirror"
)

func init() { commands["mirror"] = mirrorCmd }

// mirrorCmd fills <data>/mirror with the packages a catalog needs.
func mirrorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "sync" {
		fmt.Fprintln(stderr, "usage: deployment-engine mirror sync [--catalog NAME] [--catalog-dir DIR] [--data DIR]")
		return 2
	}
	fs := flag.NewFlagSet("mirror sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("catalog", "starter", "the catalog whose packages to gather")
	dir := fs.String("catalog-dir", "", "catalogs from this directory instead of the embedded ones")
	data := fs.String("data", "./data", "the engine's data directory; the mirror is <data>/mirror")
	if err := fs.Parse(args[1:]); err != nil {
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
