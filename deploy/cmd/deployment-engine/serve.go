package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/deployment-engine/engine/deploy/engine"
)

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o engine.Options
	var auth, only, level string
	fs.StringVar(&o.Listen, "listen", ":50000", "HTTP address of the API, the console, /metrics and /mirror/")
	fs.StringVar(&o.DataDir, "data", "./data", "data directory: JetStream store, logs, mirror, API token")
	fs.StringVar(&o.NATSURL, "nats", os.Getenv("DE_NATS_URL"), "URL of an external NATS server, or comma-separated URLs of a cluster's servers (default: $DE_NATS_URL, else run one embedded)")
	fs.StringVar(&o.NATSListen, "nats-listen", "", "HOST:PORT where node agents reach the embedded NATS (default: the config's home, port 4222, following a changed home; :PORT follows home on another port)")
	fs.BoolVar(&o.NoAgents, "no-agents", false, "install no node agent: the nodes are read over SSH")
	fs.StringVar(&o.CatalogDir, "catalog", "", "directory of catalogs to use instead of the embedded ones")
	fs.StringVar(&auth, "auth", "token", "token, or none to turn the API token off")
	fs.StringVar(&o.TLS, "tls", "", "auto: serve the API over https with a self-signed pair made once in <data>/tls")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "certificate (PEM) to serve the API over https with, with --tls-key")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&only, "only", "", "run only these services, comma-separated: api,planner,installer,monitor,notify,logs (auto-heal runs with monitor)")
	fs.StringVar(&o.EngineID, "engine-id", "", "this engine's id, as its nodes know it (default: <data>/engine-id, else the store's, else a new one)")
	fs.DurationVar(&o.StepAckWait, "step-ack-wait", 30*time.Second, "how long a step's queue waits for a sign of life from its installer before handing the step to another")
	fs.IntVar(&o.Replicas, "replicas", 0, "NATS servers that keep each stream and bucket (default: 3 when --nats is a cluster of 3 or more, else 1); a stream with fewer is raised in place")
	var logMB int64
	fs.Int64Var(&logMB, "log-max-mb", 64, "size in MiB at which a log of the store is rotated")
	fs.IntVar(&o.LogKeep, "log-keep", 3, "rotated files kept per log")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if logMB < 1 || o.LogKeep < 0 {
		fmt.Fprintln(stderr, "serve: --log-max-mb must be at least 1 and --log-keep not negative")
		return 2
	}
	o.LogMaxBytes = logMB << 20
	switch auth {
	case "token":
	case "none":
		o.AuthNone = true
	default:
		fmt.Fprintf(stderr, "--auth must be token or none, not %q\n", auth)
		return 2
	}
	if only != "" {
		o.Only = strings.Split(only, ",")
		for i := range o.Only {
			o.Only[i] = strings.TrimSpace(o.Only[i])
		}
		if err := engine.CheckOnly(o.Only); err != nil {
			fmt.Fprintln(stderr, "serve:", err)
			return 2
		}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(stderr, "--log-level: %v\n", err)
		return 2
	}
	o.Build = buildInfo()
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if err := engine.Serve(ctx, o); err != nil {
		o.Logger.Error("engine stopped", "err", err)
		return 1
	}
	return 0
}
