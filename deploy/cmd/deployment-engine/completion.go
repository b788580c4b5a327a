package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

func init() { commands["completion"] = completionCmd }

// completion lists, per command, its subcommands and flags. A test holds
// it to the commands the binary has and to every flag each one parses.
var completion = map[string]struct{ subs, flags []string }{
	"serve": {flags: []string{"--listen", "--data", "--nats", "--nats-listen", "--start-timeout", "--no-agents", "--agent-binary", "--catalog", "--auth",
		"--tls", "--tls-cert", "--tls-key", "--only", "--replicas", "--engine-id", "--step-ack-wait",
		"--log-max-mb", "--log-keep", "--log-level", "--memory-limit-mb", "--webhook-allow",
		"--release-max-mb", "--release-max-unpacked-mb", "--release-max-expansion", "--release-max-text-kb", "--release-max-files",
		"--render-user", "--render-unboxed"}},
	"backup":       {flags: []string{"--data", "--nats"}},
	"restore":      {flags: []string{"--data", "--nats"}},
	"mirror":       {subs: []string{"sync", "add", "remove"}, flags: []string{"--catalog", "--catalog-dir", "--data"}},
	"token":        {subs: []string{"add", "revoke", "list"}, flags: []string{"--data", "--role", "--clusters"}},
	"config":       {subs: []string{"get", "set", "edit", "schema"}, flags: []string{"--check=false"}},
	"precheck":     {},
	"plan":         {},
	"deploy":       {flags: []string{"--follow", "--plan"}},
	"cancel":       {},
	"deployments":  {flags: []string{"--steps"}},
	"takeover":     {},
	"status":       {},
	"instances":    {flags: []string{"--ps"}},
	"hardware":     {},
	"restart":      {flags: []string{"--max-in-flight", "--follow"}},
	"rollback":     {flags: []string{"--follow"}},
	"exec":         {flags: []string{"--max-in-flight", "--timeout", "--halt-on-failure"}},
	"copy":         {flags: []string{"--to", "--from", "--mode", "--max-in-flight"}},
	"patch":        {flags: []string{"--max-in-flight", "--reboot"}},
	"errand":       {subs: []string{"run"}, flags: []string{"--when-changed", "--timeout"}},
	"errands":      {},
	"disks":        {subs: []string{"delete"}},
	"stop":         {},
	"scale":        {flags: []string{"--follow"}},
	"logs":         {flags: []string{"--follow", "--tail"}},
	"audit":        {},
	"heal":         {subs: []string{"on", "off"}},
	"node":         {subs: []string{"maintenance"}, flags: []string{"--reason"}},
	"certificates": {subs: []string{"rotate"}},
	"problems":     {subs: []string{"resolve"}, flags: []string{"--auto", "--follow"}},
	"schedule":     {subs: []string{"add", "list", "delete"}, flags: []string{"--cron", "--tz", "--action", "--args", "--allow-overlap", "--missed"}},
	"report":       {},
	"clusters":     {subs: []string{"create", "show", "delete"}, flags: []string{"--follow"}},
	"release":      {subs: []string{"upload", "list"}},
	"version":      {},
	"openapi":      {},
	"asyncapi":     {},
	"manifest": {subs: []string{"interpolate", "config", "deploy", "variables"}, flags: []string{"--ops-file", "--var", "--vars-file", "--vars-store", "--var-errs", "--path",
		"--home", "--key", "--domain", "--user", "--check", "--follow", "--json", "--data", "--server", "--cluster"}},
	"cloud-config": {subs: []string{"update"}},
	"completion":   {subs: []string{"bash", "zsh", "fish"}},
	"help":         {},
}

// commonClientFlags are every client command's.
var commonClientFlags = []string{"--json", "--data", "--server", "--cluster", "--help"}

// notClient are the commands that are not clients of a running engine.
var notClient = map[string]bool{"serve": true, "backup": true, "restore": true, "mirror": true,
	"token": true, "completion": true, "help": true, "openapi": true, "manifest": true,
	"asyncapi": true}

func completionNames() []string {
	var out []string
	for n := range completion {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// completionCmd: completion bash|zsh|fish prints a completion script.
func completionCmd(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: deployment-engine completion bash|zsh|fish\n\n"+
			"  bash: source <(deployment-engine completion bash)   (or put it in /etc/bash_completion.d/deployment-engine)\n"+
			"  zsh:  source <(deployment-engine completion zsh)\n"+
			"  fish: deployment-engine completion fish > ~/.config/fish/completions/deployment-engine.fish")
		return exitUsage
	}
	switch args[0] {
	case "bash":
		fmt.Fprint(stdout, bashCompletion())
	case "zsh":
		// zsh runs the bash function through its bashcompinit.
		fmt.Fprint(stdout, "autoload -U +X bashcompinit && bashcompinit\n"+bashCompletion())
	case "fish":
		fmt.Fprint(stdout, fishCompletion())
	default:
		fmt.Fprintf(stderr, "completion: %q: say bash, zsh or fish\n", args[0])
		return exitUsage
	}
	return exitOK
}

func flagsOf(cmd string) []string {
	f := append([]string{}, completion[cmd].flags...)
	if !notClient[cmd] {
		for _, c := range commonClientFlags {
			if !slices.Contains(f, c) {
				f = append(f, c)
			}
		}
	}
	return f
}

func bashCompletion() string {
	var b strings.Builder
	b.WriteString(`# bash completion for deployment-engine
_deployment_engine() {
  local cur cmd subs flags
  cur="${COMP_WORDS[COMP_CWORD]}"
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "` + strings.Join(completionNames(), " ") + `" -- "$cur"))
    return
  fi
  cmd="${COMP_WORDS[1]}"
  case "$cmd" in
`)
	for _, n := range completionNames() {
		fmt.Fprintf(&b, "    %s) subs=%q; flags=%q ;;\n", n, strings.Join(completion[n].subs, " "), strings.Join(flagsOf(n), " "))
	}
	b.WriteString(`    *) return ;;
  esac
  case "$cur" in
    -*) COMPREPLY=($(compgen -W "$flags" -- "$cur")); return ;;
  esac
  if [ "$COMP_CWORD" -eq 2 ] && [ -n "$subs" ]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return
  fi
  # A config file, a release tarball or a log name: files.
  COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _deployment_engine deployment-engine
`)
	return b.String()
}

func fishCompletion() string {
	var b strings.Builder
	b.WriteString("# fish completion for deployment-engine\ncomplete -c deployment-engine -f\n")
	fmt.Fprintf(&b, "complete -c deployment-engine -n __fish_use_subcommand -a %q\n", strings.Join(completionNames(), " "))
	for _, n := range completionNames() {
		if s := completion[n].subs; len(s) > 0 {
			fmt.Fprintf(&b, "complete -c deployment-engine -n '__fish_seen_subcommand_from %s' -a %q\n", n, strings.Join(s, " "))
		}
		for _, f := range flagsOf(n) {
			name, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
			fmt.Fprintf(&b, "complete -c deployment-engine -n '__fish_seen_subcommand_from %s' -l %s\n", n, name)
		}
	}
	b.WriteString("complete -c deployment-engine -n '__fish_seen_subcommand_from config plan release backup restore' -F\n")
	return b.String()
}
