package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"time"

	"github.com/deployment-engine/engine/deploy/engine"
	"github.com/deployment-engine/engine/planner/bosh"
	"github.com/deployment-engine/engine/planner/release"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
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
	fs.StringVar(&o.AgentBinary, "agent-binary", "", "the node agent's binary, which the nodes fetch from the engine (default: de-agent beside this executable; missing, deployments install no agent)")
	fs.StringVar(&o.CatalogDir, "catalog", "", "directory of catalogs to use instead of the embedded ones")
	fs.StringVar(&auth, "auth", "token", "token, or none to turn the API token off")
	fs.StringVar(&o.TLS, "tls", "", "auto: serve the API over https with a self-signed pair made once in <data>/tls")
	fs.StringVar(&o.TLSCert, "tls-cert", "", "certificate (PEM) to serve the API over https with, with --tls-key")
	fs.StringVar(&o.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&only, "only", "", "run only these services, comma-separated: api,planner,installer,monitor,notify,logs (auto-heal runs with monitor)")
	fs.StringVar(&o.EngineID, "engine-id", "", "this engine's id, as its nodes know it (default: <data>/engine-id, else the store's, else a new one)")
	fs.DurationVar(&o.StepAckWait, "step-ack-wait", 30*time.Second, "how long a step's queue waits for a sign of life from its installer before handing the step to another")
	fs.DurationVar(&o.StartTimeout, "start-timeout", bus.DefaultStartTimeout, "how long to wait at start for --nats servers that are still forming a cluster or without quorum (their JetStream leader and peers), logging what it waits for, before exiting")
	fs.IntVar(&o.Replicas, "replicas", 0, "NATS servers that keep each stream and bucket (default: 3 when --nats is a cluster of 3 or more, else 1); a stream with fewer is raised in place")
	fs.Func("webhook-allow", "networks webhooks may reach although they are loopback, link-local or this machine's own, comma-separated CIDRs or addresses (e.g. 127.0.0.1/32 for a local receiver); repeatable", func(v string) error {
		nets, err := contract.ParseNetworks(v)
		o.WebhookAllow = append(o.WebhookAllow, nets...)
		return err
	})
	var logMB int64
	fs.Int64Var(&logMB, "log-max-mb", 64, "size in MiB at which a log of the store is rotated")
	fs.IntVar(&o.LogKeep, "log-keep", 3, "rotated files kept per log")
	fs.StringVar(&level, "log-level", "info", "debug, info, warn or error")
	var memMB int64
	fs.Int64Var(&memMB, "memory-limit-mb", defaultMemoryLimitMB, "floor in MiB of the engine's soft memory limit, which follows its live heap above it with room for half of it again, at least 48 MiB (default: $GOMEMLIMIT as a fixed limit when set); 0 for none")
	fs.StringVar(&bosh.Sandbox.User, "render-user", bosh.Sandbox.User, "unprivileged user that renders BOSH release templates, with no network, in their own namespaces")
	fs.BoolVar(&bosh.Sandbox.Unboxed, "render-unboxed", false, "let an engine that is not root render BOSH release templates as its own user, without the user, network and PID isolation (templates can then read all the engine can)")
	rel := releaseFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if o.ReleaseLimits, err = rel(); err != nil {
		fmt.Fprintln(stderr, "serve:", err)
		return 2
	}
	if o.StartTimeout <= 0 {
		fmt.Fprintln(stderr, "serve: --start-timeout must be positive")
		return 2
	}
	if memMB < 0 {
		fmt.Fprintln(stderr, "serve: --memory-limit-mb must not be negative")
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
	// Only once every flag is valid: the limit's goroutine lives as long
	// as the engine.
	keepMemoryLimit(ctx, fs, memMB)
	o.Build = buildInfo()
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	if err := engine.Serve(ctx, o); err != nil {
		o.Logger.Error("engine stopped", "err", err)
		return 1
	}
	return 0
}

// releaseFlags declares the limits of a release upload on fs; the func
// returned, once fs is parsed, checks them and converts them to bytes.
func releaseFlags(fs *flag.FlagSet) func() (release.Limits, error) {
	def := release.Limits{}.WithDefaults()
	upload := fs.Int64("release-max-mb", def.Upload>>20, "largest release tarball an upload may send, compressed, in MiB")
	unpacked := fs.Int64("release-max-unpacked-mb", def.Unpacked>>20, "most a release tarball may unpack to, in MiB")
	expansion := fs.Int64("release-max-expansion", def.Expansion, "most times its compressed size a release tarball may unpack to beyond its first 64 MiB (a real release: about once; a compression bomb: a thousand times)")
	text := fs.Int64("release-max-text-kb", def.Text>>10, "largest template or monit file of a release's job, in KiB, which the engine keeps in memory; release.MF and each job.MF may have a quarter of it, a job's tarball 4 times it, a release's jobs together 32 times it")
	files := fs.Int("release-max-files", def.Files, "most entries in a release tarball or in one of its jobs")
	return func() (release.Limits, error) {
		if *upload < 1 || *unpacked < 1 || *expansion < 1 || *text < 4 || *files < 1 {
			return release.Limits{}, errors.New("--release-max-mb, --release-max-unpacked-mb, --release-max-expansion and --release-max-files must be at least 1, --release-max-text-kb at least 4")
		}
		return release.Limits{Upload: *upload << 20, Unpacked: *unpacked << 20, Expansion: *expansion, Text: *text << 10, Files: *files}, nil
	}
}

// defaultMemoryLimitMB is the floor of the engine's soft memory limit.
// Without a limit the Go runtime lets the heap reach twice what is live
// and hands freed memory back to the system slowly: after a deployment of
// 1,000 instances the engine stayed near 200 MB for minutes while its live
// heap was about 40 MB.
const defaultMemoryLimitMB = 100

// memoryLimitEvery is how often the limit follows the live heap.
const memoryLimitEvery = 2 * time.Second

// memoryLimit is the soft limit for a live heap: the floor, or the live
// heap and room above it (half as much again, at least 48 MiB) when that
// is more, so that a large engine is never held to a limit that would
// keep its collector running. Half rather than Go's default of as much
// again: right after a deployment of 1,000 instances the live heap still
// counts 25 MB of the store's write buffers, and twice it kept the engine
// near 190 MB.
func memoryLimit(floor, live int64) int64 {
	return max(floor, live+max(48<<20, live/2))
}

// keepMemoryLimit applies --memory-limit-mb until ctx ends: a limit that
// follows the live heap (memoryLimit), so that memory above it goes back
// to the system at once. A GOMEMLIMIT in the environment stands unless the
// flag was given; 0 sets no limit.
func keepMemoryLimit(ctx context.Context, fs *flag.FlagSet, mb int64) {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == "memory-limit-mb" })
	if !given && os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	if mb == 0 {
		debug.SetMemoryLimit(math.MaxInt64)
		return
	}
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	set := func() {
		metrics.Read(s)
		live := int64(0)
		if s[0].Value.Kind() == metrics.KindUint64 {
			live = int64(s[0].Value.Uint64())
		}
		debug.SetMemoryLimit(memoryLimit(mb<<20, live))
	}
	set()
	go func() {
		t := time.NewTicker(memoryLimitEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				set()
			}
		}
	}()
}
