// Command de-agent is the node agent's binary: deploy fetches it from the
// engine onto every node (/usr/local/bin/de-agent) with its config file;
// monit keeps it running. It holds only what an agent needs, no engine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/deployment-engine/engine/monitor/agent"
	"github.com/deployment-engine/engine/services/nodefs"
)

// version is the engine's build version, set by `make build` with the
// engine's own -ldflags "-X main.version=...": the agent reports it.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the agent until ctx ends; on a changed config or binary it
// becomes the new binary in place, so monit sees the same process carry on.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("de-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("config", nodefs.AgentConfig, "the agent's config file, written by deploy")
	state := fs.String("state", "", "where the agent keeps its log offsets (default: beside the config)")
	showVersion := fs.Bool("version", false, "print the agent's version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "de-agent", version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "de-agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := agent.LoadConfig(*conf)
	if err != nil {
		fmt.Fprintln(stderr, "de-agent:", err)
		return 1
	}
	if *state == "" {
		*state = filepath.Join(filepath.Dir(*conf), "agent-offsets.json")
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "de-agent:", err)
		return 1
	}
	log.Info("agent starting", "node", cfg.IP, "nats", cfg.NATS, "components", len(cfg.Components), "version", version)
	err = agent.Run(ctx, cfg, agent.Options{Logger: log, StateFile: *state, ConfigFile: *conf, Binary: self, Version: version})
	if errors.Is(err, agent.ErrRestart) {
		err = syscall.Exec(self, os.Args, os.Environ())
	}
	if err != nil {
		fmt.Fprintln(stderr, "de-agent:", err)
		return 1
	}
	return 0
}
