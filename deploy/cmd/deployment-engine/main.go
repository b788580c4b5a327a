// Command deployment-engine is the engine as shipped: `serve` runs it, the
// other commands are its mirror and its client. The node agent
// (monitor/cmd/de-agent, bin/de-agent) and the test bed (bin/de-testbed)
// are binaries of their own.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `deployment-engine: deploy and operate a cluster over SSH.

Usage:
  deployment-engine serve [--listen :50000] [--data ./data] [--nats URL] [--catalog DIR] [--auth none] [--engine-id ID] ...   (serve --help: every flag)
  deployment-engine backup FILE | restore FILE [--data ./data | --nats URL]   (the engine stopped, with --data)
  deployment-engine mirror sync [--catalog NAME] [--data ./data] | mirror add FILE.deb... | mirror remove PACKAGE...
  deployment-engine token add NAME [--role read|operate|deploy|admin] [--clusters A,B] | token revoke NAME | token list [--data ./data]

Client (DE_SERVER, default http://127.0.0.1:50000; DE_API_TOKEN or <data>/api-token):
  deployment-engine config get | config set FILE [--check=false] | config edit | config schema
  deployment-engine precheck | plan [FILE]
  deployment-engine deploy [--follow] [--plan ID] | cancel ID | takeover ENGINE-ID [IP...]
  deployment-engine status | hardware [COMP IP]
  deployment-engine restart COMP IP | stop COMP IP | scale COMP IP
  deployment-engine exec COMP|IP[,IP...] [--max-in-flight N] [--timeout S] -- COMMAND...
  deployment-engine patch [IP[,IP...]] [--max-in-flight N] [--reboot if-required|always|never]
  deployment-engine copy COMP|IP[,IP...] --to PATH FILE [--mode 0640] [--max-in-flight N]
  deployment-engine errands | errand run NAME [--when-changed]
  deployment-engine disks | disks delete IP
  deployment-engine logs [NAME]
  deployment-engine report ID | audit [since=] [actor=] [action=] | heal [on|off]
  deployment-engine node maintenance [IP [on --reason TEXT | off]]
  deployment-engine schedule add NAME --cron EXPR --action ACTION [--tz ZONE] [--args JSON] [--allow-overlap] [--missed run_once]
  deployment-engine schedule list | schedule delete NAME
  deployment-engine certificates
  deployment-engine problems [--auto] | problems resolve ID FIX [--follow]
  deployment-engine release upload FILE | release list
  deployment-engine version
  deployment-engine openapi   (the API's OpenAPI 3.1 document, built in-process: no engine needed)
  deployment-engine asyncapi  (the AsyncAPI 3.0 document of the engine's events on NATS, built in-process)
  deployment-engine manifest interpolate FILE [-o OPS]... [-v NAME=VALUE]... [-l VARS]... [--vars-store FILE] [--var-errs] [--path POINTER]
                              (a BOSH manifest with its ops files and variables, as bosh interpolate: no engine needed)
  deployment-engine manifest config FILE [-o OPS]... [-v ...] [-l ...] [--vars-store FILE] --home IP [--key PATH]
                              (the config that deploys it, catalog bosh: deployment-engine manifest config ... | deployment-engine config set -)
  deployment-engine cloud-config | cloud-config update FILE   (the machines manifests deploy on: home, ssh, azs, disks; YAML)
  deployment-engine manifest deploy FILE [-o OPS]... [-v NAME=VALUE]... [-l VARS]... [--check=false] [--follow]
                              (deploys it on the cloud config's machines; the engine generates its variables once and keeps them)
  deployment-engine completion bash|zsh|fish
Add --json to any client command for machine-readable output.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	if h, ok := commands[cmd]; ok {
		return h(ctx, rest, stdout, stderr)
	}
	fmt.Fprintf(stderr, "unknown command %q\n\n%s", cmd, usage)
	return 2
}

// commands beyond serve, registered by the files that implement them.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{}
