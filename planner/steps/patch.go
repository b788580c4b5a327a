package steps

import (
	"fmt"
	"slices"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/nodefs"
)

// Deadlines of a patch's node steps, in seconds: an upgrade downloads and
// unpacks; a node back from a reboot may take minutes to boot and start
// what it runs.
const (
	patchUpgradeTimeout = 1800
	patchBackTimeout    = 900
)

// PatchSteps upgrade the packages of the nodes in groups, one batch a
// group, each batch after the whole of the one before, as a rollout's
// batches go: every instance of a node that a running balancer balances
// is taken out of it; the node's packages are upgraded from the engine's
// mirror; the node reboots when it asks for it (reboot, a policy), or its
// processes restart to run what was upgraded; the node, its monit and
// every process monit watches (its agent among them) are waited for; each
// balanced instance is watched healthy and put back. A batch that fails
// skips the rest.
func (in Builder) PatchSteps(groups [][]string, reboot string) ([]*Step, []contract.Batch, error) {
	ro := rollout{in: in}
	var out []*Step
	var batches []contract.Batch
	var gate []string
	for k, group := range groups {
		b := contract.Batch{Component: NodeComponent, Index: k, Nodes: group, State: contract.BatchPending}
		var next []string
		for _, ip := range group {
			upgrade := in.stamp(&Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "patch-upgrade",
				Script: patchUpgradeScript(in.MirrorURL, in.ID), TimeoutS: patchUpgradeTimeout, Hash: Hash("patch-upgrade", in.ID, ip)}})
			restart := in.stamp(&Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "patch-reboot",
				Script: patchRebootScript(in.ID, reboot), TimeoutS: 300, Hash: Hash("patch-reboot", in.ID, ip)}, After: []string{upgrade.Spec.ID}})
			back := in.stamp(&Step{Spec: contract.Step{Node: ip, Component: NodeComponent, Action: "patch-back",
				Script: patchBackScript(in.ID), TimeoutS: patchBackTimeout, Hash: Hash("patch-back", in.ID, ip), AwaitsBoot: true},
				After: []string{restart.Spec.ID}})
			// The node's balanced instances, all of them as one.
			var all instance
			if in.Catalog != nil {
				for _, comp := range in.Catalog.Order {
					if !slices.Contains(in.Previous[ip], comp) || len(in.Catalog.Balancers(comp)) == 0 {
						continue
					}
					set := SettingsFor(in.Catalog, in.Config, comp, contract.UpdateSettings{})
					inst, err := ro.instanceSteps(comp, ip, gate, []string{back.Spec.ID}, 0, set.update, 0)
					if err != nil {
						return nil, nil, err
					}
					all.drains, all.watch, all.readies = append(all.drains, inst.drains...), append(all.watch, inst.watch...), append(all.readies, inst.readies...)
				}
			}
			// The drains wait for the batch before; without any, the upgrade does.
			upgrade.After = append(upgrade.After, all.firstIDs()...)
			if len(all.drains) == 0 {
				upgrade.After = append(upgrade.After, gate...)
			}
			out = append(append(append(out, all.drains...), upgrade, restart, back), append(all.watch, all.readies...)...)
			b.Steps = append(append(b.Steps, all.ids(all.drains)...), upgrade.Spec.ID, restart.Spec.ID, back.Spec.ID)
			b.Steps = append(append(b.Steps, all.ids(all.watch)...), all.ids(all.readies)...)
			if ids := all.gateIDs(); len(ids) > 0 {
				next = append(next, ids...)
			} else {
				next = append(next, back.Spec.ID)
			}
		}
		gate = next
		batches = append(batches, b)
	}
	return out, batches, nil
}

// patchMark is the file that says a patch asked the node to reboot: in
// /run, which a boot starts empty, so that it is gone once the node has
// rebooted.
func patchMark(id string) string { return "/run/deployment-engine-patch-" + id }

// patchUpgraded lists what the patch's upgrade changed on the node.
func patchUpgraded(id string) string { return nodefs.State + "/patch-" + id + ".upgraded" }

// patchUpgradeScript upgrades every package of the node that the engine's
// mirror has newer (and installs what their new versions depend on, a new
// kernel's package among them; it removes nothing), with the mirror as the only source and package lists
// of its own (the node's apt state is left as it was), keeping the
// node's changed configuration files and starting no service (monit owns
// them). It prints what it upgrades, and keeps the list for the reboot
// step.
func patchUpgradeScript(mirrorURL, id string) string {
	// No trap: the step's own EXIT trap writes its marker.
	return mirrorCheck(mirrorURL) + fmt.Sprintf(`up=%[2]s d=%[3]s
rm -rf "$d"
mkdir -p "$d/lists/partial" "$(dirname "$up")"
echo 'deb [trusted=yes] %[1]s ./' > "$d/sources.list"
export DEBIAN_FRONTEND=noninteractive
# DPkg::Lock::Timeout: wait for a dpkg another apt holds (unattended-upgrades)
# rather than fail; --with-new-pkgs: a new kernel comes as a new package.
o="-q -o Dir::Etc::SourceList=$d/sources.list -o Dir::Etc::SourceParts=$d/none -o Dir::State::Lists=$d/lists -o APT::Sandbox::User=root -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300"
apt-get $o update >/dev/null
apt-get $o -s --with-new-pkgs upgrade | awk '/^Inst / { if ($3 ~ /^\[/) print $2, $3, "->", $4; else print $2, "(new)", "->", $3 }' | tr -d '[]()' > "$up"
if [ ! -s "$up" ]; then echo "every package is as new as the mirror's"; rm -rf "$d"; exit 0; fi
echo "upgrading $(wc -l < "$up") package(s) from %[1]s:"
sed 's/^/  /' "$up"
# Package scripts must not start services: monit owns them.
rc=/usr/sbin/policy-rc.d made=0
if [ ! -e "$rc" ]; then printf '#!/bin/sh\nexit 101\n' > "$rc"; chmod 755 "$rc"; made=1; fi
st=0
apt-get $o -y --with-new-pkgs -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold upgrade || st=$?
[ "$made" = 0 ] || rm -f "$rc"
rm -rf "$d"
if [ "$st" != 0 ]; then echo "apt-get upgrade failed (exit $st)" >&2; exit "$st"; fi
if [ -e /var/run/reboot-required ]; then echo "upgraded; the node asks for a reboot"; else echo "upgraded"; fi
`, mirrorURL, kit.ShellQuote(patchUpgraded(id)), kit.ShellQuote(nodefs.State+"/patch-apt"))
}

// patchRebootScript reboots the node when the policy says so (when it
// asks for it: /var/run/reboot-required) and marks that it did (in /run,
// which the boot empties); the reboot comes a moment after the step has
// ended, so that its result is kept. Without a reboot, the processes monit
// watches restart when the upgrade changed anything, to run what it
// installed; the node's agent, which may be running this step, is left
// alone.
func patchRebootScript(id, policy string) string {
	if policy == "" {
		policy = contract.PatchRebootIfRequired
	}
	return fmt.Sprintf(`set -u
m=%[1]s up=%[2]s policy=%[3]s
rm -f "$m"
if [ "$policy" = always ] || { [ "$policy" = if-required ] && [ -e /var/run/reboot-required ]; }; then
  why="the patch's policy is to reboot"
  if [ -e /var/run/reboot-required ]; then why="the node asks for it"; [ -s /var/run/reboot-required.pkgs ] && why="$why ($(sort -u /var/run/reboot-required.pkgs | tr '\n' ' ' | sed 's/ $//'))"; fi
  : > "$m"
  setsid -f sh -c 'sleep 2; PATH=/usr/local/sbin:/usr/sbin:/sbin:$PATH exec reboot' </dev/null >/dev/null 2>&1
  echo "rebooting in 2 s: $why"
  exit 0
fi
if [ -e /var/run/reboot-required ]; then echo "the node asks for a reboot, and the patch's policy is never to reboot: it is left to a person" >&2; fi
if [ ! -s "$up" ]; then echo "nothing was upgraded: nothing to restart"; exit 0; fi
command -v monit >/dev/null 2>&1 || { echo "no monit on the node: nothing to restart"; exit 0; }
# A process runs what the upgrade replaced when its program or a library
# it mapped is a deleted file.
stale() {
  case "$(readlink "/proc/$1/exe" 2>/dev/null)" in *" (deleted)") return 0 ;; esac
  grep -Eqs ' /(usr|lib|lib32|lib64|bin|sbin|opt)/[^ ]* \(deleted\)$' "/proc/$1/maps"
}
n=0
for pp in $(monit status 2>/dev/null | awk %[4]s); do
  p=${pp%%%%:*} pid=${pp#*:}
  [ "$p" = de-agent ] && continue
  if stale "$pid"; then monit restart "$p" && echo "restarted $p: it ran what the upgrade replaced" && n=$((n+1)); fi
done
echo "$n process(es) restarted to run the upgraded packages"
`, kit.ShellQuote(patchMark(id)), kit.ShellQuote(patchUpgraded(id)), kit.ShellQuote(policy), kit.ShellQuote(processPIDs))
}

// processPIDs is an awk program that reads monit status and prints each
// running process as name:pid.
const processPIDs = `/^Process /{ p = $2; gsub("\047", "", p); next }
/^[^[:space:]]/{ p = "" }
p != "" && $1 == "pid" { print p ":" $2; p = "" }`

// notRunning is an awk program that reads monit status and prints each
// process that does not run ('name': its status), nothing when all do. A
// process someone stopped (not monitored) counts as it is.
const notRunning = `/^Process /{ p = $2; next }
/^[^[:space:]]/{ p = "" }
p != "" && $1 == "status" { $1 = ""; sub(/^ +/, ""); if ($0 !~ /^(OK|Running|Not monitored)/) print p ": " $0; p = "" }`

// patchBackScript waits for the reboot the step before asked for (its mark
// in /run gone: a connection that drops meanwhile is tried again, see
// Step.AwaitsBoot), then for monit to answer and every process it watches
// to run (a process someone stopped, unmonitored, counts as it is).
func patchBackScript(id string) string {
	return fmt.Sprintf(`set -u
m=%[1]s
t0=$(date +%%s)
while [ -e "$m" ]; do
  if [ $(( $(date +%%s) - t0 )) -ge 120 ]; then echo "the node has not rebooted 120 s after it was asked to" >&2; exit 1; fi
  sleep 1
done
rm -f %[2]s
if ! command -v monit >/dev/null 2>&1; then echo "the node is up; it has no monit to wait for"; exit 0; fi
while :; do
  if s=$(monit status 2>/dev/null); then
    bad=$(printf '%%s\n' "$s" | awk %[4]s)
    if [ -z "$bad" ]; then echo "the node is up and every process monit watches runs ($(( $(date +%%s) - t0 )) s)"; exit 0; fi
    why="$bad"
  else
    why="monit does not answer yet"
  fi
  if [ $(( $(date +%%s) - t0 )) -ge %[3]d ]; then echo "not every process runs $(( $(date +%%s) - t0 )) s on: $why" >&2; exit 1; fi
  sleep 1
done
`, kit.ShellQuote(patchMark(id)), kit.ShellQuote(patchUpgraded(id)), patchBackTimeout-60, kit.ShellQuote(notRunning))
}
