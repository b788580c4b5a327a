package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/deployment-engine/engine/monitor/agent"
	"github.com/deployment-engine/engine/services/nodefs"
)

func init() { commands["agent"] = agentCmd }

// agentCmd runs the node agent; deploy installs it on every node with its
// config file and monit keeps it running.
func agentCmd(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("config", nodefs.AgentConfig, "the agent's config file, written by deploy")
	state := fs.String("state", "", "where the agent keeps its log offsets (default: beside the config)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg, err := agent.LoadConfig(*conf)
	if err != nil {
		fmt.Fprintln(stderr, "agent:", err)
		return 1
	}
	if *state == "" {
		*state = filepath.Join(filepath.Dir(*conf), "agent-offsets.json")
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "agent:", err)
		return 1
	}
	log.Info("agent starting", "node", cfg.IP, "nats", cfg.NATS, "components", len(cfg.Components))
	err = agent.Run(ctx, cfg, agent.Options{Logger: log, StateFile: *state, ConfigFile: *conf, Binary: self})
	if errors.Is(err, agent.ErrRestart) {
		// A deployment changed the config or the binary: become the new
		// one in place, so monit sees the same process carry on.
		err = syscall.Exec(self, os.Args, os.Environ())
	}
	if err != nil {
		fmt.Fprintln(stderr, "agent:", err)
		return 1
	}
	return 0
}
