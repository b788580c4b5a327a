package main

import (
	"flag"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The completion knows every command the binary has and every flag each
// one parses: serve's, backup's and restore's from their flag
// sets' help, mirror's and token's from their usage, the client
// commands' from the client flag set. Bash completes from it.
func TestCompletion(t *testing.T) {
	for name := range commands {
		if _, ok := completion[name]; !ok {
			t.Errorf("command %q has no completion", name)
		}
	}
	for name := range completion {
		if _, ok := commands[name]; !ok && name != "serve" && name != "help" {
			t.Errorf("completion of %q, which is no command", name)
		}
	}
	flagLine := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	for _, cmd := range []string{"serve", "backup", "restore"} {
		r := cli(t, cmd, "--help")
		found := flagLine.FindAllStringSubmatch(r.stderr+r.stdout, -1)
		if len(found) == 0 {
			t.Errorf("%s --help lists no flag: %+v", cmd, r)
		}
		var has []string
		for _, m := range found {
			has = append(has, "--"+m[1])
			if !slices.Contains(completion[cmd].flags, "--"+m[1]) {
				t.Errorf("%s flag --%s is not completed", cmd, m[1])
			}
		}
		for _, f := range completion[cmd].flags {
			if !slices.Contains(has, f) {
				t.Errorf("completion offers %s %s, which it does not have", cmd, f)
			}
		}
	}
	usageFlag := regexp.MustCompile(`--([a-z-]+)`)
	for _, cmd := range []string{"mirror", "token", "manifest"} {
		r := cli(t, cmd, "--help")
		for _, m := range usageFlag.FindAllStringSubmatch(r.stderr+r.stdout, -1) {
			if !slices.Contains(completion[cmd].flags, "--"+m[1]) {
				t.Errorf("%s flag --%s is not completed", cmd, m[1])
			}
		}
	}
	fs, _, _, _ := clientFlags(&session{name: "test"})
	var clientHas []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "h" {
			return
		}
		clientHas = append(clientHas, "--"+f.Name)
		for name := range completion {
			if !notClient[name] && slices.ContainsFunc(flagsOf(name), func(c string) bool { return strings.HasPrefix(c, "--"+f.Name) }) {
				return
			}
		}
		t.Errorf("client flag --%s is completed for no command", f.Name)
	})
	for name := range completion {
		if notClient[name] {
			continue
		}
		for _, f := range flagsOf(name) {
			base, _, _ := strings.Cut(f, "=")
			if !slices.Contains(clientHas, base) {
				t.Errorf("completion offers %s %s, which no client command has", name, f)
			}
		}
	}

	script := cli(t, "completion", "bash")
	if script.code != exitOK {
		t.Fatalf("completion bash: %+v", script)
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"con"}, "config"},
		{[]string{"config", ""}, "get set edit schema"},
		{[]string{"config", "e"}, "edit"},
		{[]string{"pre"}, "precheck"},
		{[]string{"serve", "--nats-"}, "--nats-listen"},
		{[]string{"serve", "--no"}, "--no-agents"},
		{[]string{"serve", "--tls"}, "--tls --tls-cert --tls-key"},
		{[]string{"deploy", "--p"}, "--plan"},
		{[]string{"exec", "--ti"}, "--timeout"},
		{[]string{"exec", "--ha"}, "--halt-on-failure"},
		{[]string{"copy", "--t"}, "--to"},
		{[]string{"copy", "--fr"}, "--from"},
		{[]string{"copy", "--m"}, "--mode --max-in-flight"},
		{[]string{"status", "--js"}, "--json"},
		{[]string{"ver"}, "version"},
		{[]string{"comp"}, "completion"},
		{[]string{"completion", ""}, "bash zsh fish"},
	} {
		words := append([]string{"deployment-engine"}, tc.words...)
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		sh := script.stdout + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" + strconv.Itoa(len(tc.words)) +
			"\n_deployment_engine; echo \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command("bash", "-c", sh).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != tc.want {
			t.Errorf("complete %q: %q %v, want %q", tc.words, out, err, tc.want)
		}
	}
	if r := cli(t, "completion", "zsh"); r.code != exitOK || !strings.HasPrefix(r.stdout, "autoload -U +X bashcompinit") || !strings.Contains(r.stdout, "complete -o filenames -F _deployment_engine") {
		t.Errorf("completion zsh: %+v", r)
	}
	if r := cli(t, "completion", "fish"); r.code != exitOK || !strings.Contains(r.stdout, "'__fish_seen_subcommand_from serve' -l nats-listen") ||
		!strings.Contains(r.stdout, "'__fish_seen_subcommand_from config' -a \"get set edit schema\"") {
		t.Errorf("completion fish: %+v", r)
	}
	if r := cli(t, "completion", "tcsh"); r.code != exitUsage {
		t.Errorf("completion tcsh: %+v", r)
	}
}
