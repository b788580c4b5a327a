package planner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/sched"
	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Persistent disks a deployment takes from their nodes are orphaned, as
// BOSH orphans the disk of an instance it deletes: the engine keeps a
// record of each in DE_SCHEDULER (disk.orphan.<node>) and leaves the data
// on the machine until it is deleted on request. disk.attached holds the
// disks of the last deployment that succeeded, which the next one is
// compared with.

const (
	diskAttachedKey = "disk.attached"
	diskOrphanKey   = "disk.orphan."
	// diskDeleteTimeout bounds a disk's deletion on its node: an unmount,
	// wipefs and a removal of the store.
	diskDeleteTimeout = 600
)

// diskKey is the key of node ip's orphan record: an IPv6 address's colons
// are no key's characters.
func diskKey(ip string) string { return diskOrphanKey + strings.ReplaceAll(ip, ":", "_") }

// diskEndpoints list the persistent disks and delete an orphaned one.
func (p *Planner) diskEndpoints() map[string]kit.Handler {
	return map[string]kit.Handler{subject.DiskList(): p.diskList, subject.DiskDelete(): p.diskDelete}
}

// orphaned are the nodes whose disk in before is not in after, sorted.
func orphaned(before, after map[string]contract.PersistentDisk) []string {
	var out []string
	for ip := range before {
		if _, kept := after[ip]; !kept {
			out = append(out, ip)
		}
	}
	slices.Sort(out)
	return out
}

// disksAfter keeps the disk records once deployment id of kind succeeded,
// on nodes: a deletion's node has no orphan any more; a deployment that
// applied a config orphans the disks it took from their nodes and adopts
// again those it gave back.
func (p *Planner) disksAfter(ctx context.Context, id, kind string, nodes []string) {
	kv := p.o.Res.Scheduler
	if kind == contract.KindDisk {
		for _, ip := range nodes {
			if err := kv.Delete(ctx, diskKey(ip)); err != nil {
				p.log.Warn("forget a deleted disk", "node", ip, "err", err)
			}
		}
		return
	}
	cfg, err := p.appliedConfig(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return // applied no config (a restart, an exec, …)
	}
	if err != nil {
		p.log.Warn("read the config a deployment applied, for its disks", "deployment", id, "err", err)
		return
	}
	now := cfg.Properties.PersistentDisks
	before := map[string]contract.PersistentDisk{}
	if e, err := kv.Get(ctx, diskAttachedKey); err == nil {
		if err := json.Unmarshal(e.Value(), &before); err != nil {
			p.log.Warn("the attached disks' record is unreadable; none is orphaned by this deployment", "err", err)
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		p.log.Warn("read the attached disks", "err", err)
		return
	}
	at := time.Now().UTC()
	for _, ip := range orphaned(before, now) {
		d := before[ip]
		b, _ := json.Marshal(contract.Disk{IP: ip, SizeMB: d.SizeMB, Device: d.Device, State: contract.DiskOrphaned, Orphaned: &at, Deployment: id})
		if _, err := kv.Put(ctx, diskKey(ip), b); err != nil {
			p.log.Warn("record an orphaned disk", "node", ip, "err", err)
			continue
		}
		p.engineEvent(ctx, "disk", fmt.Sprintf("deployment %s orphaned the persistent disk of %s (%d MB%s): its data stays on the machine until it is deleted (DELETE /deployment-engine/disks/%s)",
			id, ip, d.SizeMB, onDevice(d.Device), ip))
	}
	orphans, err := p.orphans(ctx)
	if err != nil {
		p.log.Warn("read the orphaned disks", "err", err)
	}
	for ip := range orphans {
		if _, again := now[ip]; !again {
			continue
		}
		if err := kv.Delete(ctx, diskKey(ip)); err != nil {
			p.log.Warn("adopt a disk again", "node", ip, "err", err)
		}
	}
	if now == nil {
		now = map[string]contract.PersistentDisk{}
	}
	b, _ := json.Marshal(now)
	if _, err := kv.Put(ctx, diskAttachedKey, b); err != nil {
		p.log.Warn("record the attached disks", "err", err)
	}
}

func onDevice(dev string) string {
	if dev == "" {
		return ", a directory"
	}
	return " on " + dev
}

// stepNodes are the nodes steps ran on, in the order they first appear.
func stepNodes(steps []contract.StepStatus) []string {
	var out []string
	for _, s := range steps {
		if !slices.Contains(out, s.Node) {
			out = append(out, s.Node)
		}
	}
	return out
}

// orphans reads every orphan record, by node.
func (p *Planner) orphans(ctx context.Context) (map[string]contract.Disk, error) {
	out := map[string]contract.Disk{}
	lister, err := p.o.Res.Scheduler.ListKeysFiltered(ctx, diskOrphanKey+">")
	if err != nil {
		return nil, err
	}
	for k := range lister.Keys() {
		e, err := p.o.Res.Scheduler.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		var d contract.Disk
		if err := json.Unmarshal(e.Value(), &d); err != nil || contract.CheckNodeIP(d.IP) != nil {
			p.log.Warn("an unreadable orphan record is skipped", "key", k, "err", err)
			continue
		}
		out[d.IP] = d
	}
	return out, nil
}

// diskList answers de.cmd.disk.list: the disks the stored config gives
// (attached), then the orphaned ones, each by node.
func (p *Planner) diskList(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, _, err := p.loadConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	orphans, err := p.orphans(ctx)
	if err != nil {
		return 0, nil, err
	}
	out := []contract.Disk{}
	attached := cfg.Properties.PersistentDisks
	for _, ip := range contract.SortedKeys(attached) {
		d := attached[ip]
		out = append(out, contract.Disk{IP: ip, SizeMB: d.SizeMB, Device: d.Device, State: contract.DiskAttached})
	}
	for _, ip := range contract.SortedKeys(orphans) {
		if _, again := attached[ip]; !again {
			out = append(out, orphans[ip])
		}
	}
	return 200, out, nil
}

// diskDelete answers de.cmd.disk.delete: a deployment of kind disk whose
// one step deletes node ip's orphaned disk (deleteDiskScript). A node the
// stored config gives a disk again keeps it (409): its deploy finds the
// store as it was left.
func (p *Planner) diskDelete(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.DiskDelete
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	if err := contract.CheckNodeIP(in.IP); err != nil {
		return 0, nil, kit.Errorf(400, "ip: %v", err)
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	orphans, err := p.orphans(ctx)
	if err != nil {
		return 0, nil, err
	}
	d, ok := orphans[in.IP]
	if !ok {
		have := slices.Sorted(maps.Keys(orphans))
		msg := fmt.Sprintf("no orphaned disk on %s", in.IP)
		if len(have) > 0 {
			msg += ": there are orphaned disks on " + strings.Join(have, ", ")
		}
		return 0, nil, kit.Errorf(404, "%s (GET /deployment-engine/disks lists them)", msg)
	}
	if _, again := cfg.Properties.PersistentDisks[in.IP]; again {
		return 0, nil, kit.Errorf(409, "the stored config gives %s a persistent disk again: deploy it to use the store as it was left, or take the disk out of the config and deploy before deleting it", in.IP)
	}
	id := newID()
	planned, batches, err := steps.Builder{ID: id, Engine: p.o.EngineID}.ExecSteps(contract.KindDisk, [][]string{{in.IP}}, deleteDiskScript(d.Device), diskDeleteTimeout)
	if err != nil {
		return 0, nil, err
	}
	rec := sched.NewRecord(id, map[string][]string{}, planned)
	rec.Batches, rec.Kind = batches, contract.KindDisk
	if err := p.beginFleet(ctx, cfg, rec); err != nil {
		return 0, nil, err
	}
	p.engineEvent(ctx, "disk", fmt.Sprintf("%s deletes the orphaned persistent disk of %s (%d MB%s): deployment %s",
		cmp.Or(in.Actor, "someone"), in.IP, d.SizeMB, onDevice(d.Device), id))
	return 202, contract.DiskDeleteStarted{ID: id, IP: in.IP}, nil
}

// deleteDiskScript deletes the node's persistent disk: the store
// unmounted and out of /etc/fstab, device's filesystem signatures erased
// (so that no later use of it finds the old data), the store's content
// removed; a node that keeps BOSH's layout keeps an empty store, as its
// layout made it. It ends by checking that the node shows all of it, and
// refuses, saying why, to erase a device mounted elsewhere.
func deleteDiskScript(device string) string {
	return fmt.Sprintf(`set -eu
store=/var/vcap/store
dev=%[1]s
if mountpoint -q "$store"; then
  if ! umount "$store"; then
    echo "$store is in use: stop what holds it (fuser -vm $store shows it), then delete the disk again" >&2
    exit 1
  fi
  echo "unmounted $store"
fi
if grep -qs " $store " /etc/fstab; then
  sed -i '\| /var/vcap/store |d' /etc/fstab
  echo "took $store out of /etc/fstab"
fi
if [ -n "$dev" ]; then
  if [ ! -b "$dev" ]; then
    echo "$dev is no block device on this machine now: nothing to erase on it"
  elif where=$(findmnt -n -o TARGET -S "$dev" 2>/dev/null) && [ -n "$where" ]; then
    echo "$dev is mounted on $where, not on $store: left as it is; unmount it, then delete the disk again" >&2
    exit 1
  else
    wipefs -a -q "$dev"
    echo "erased the filesystem signatures of $dev"
  fi
fi
rm -rf "$store"
if [ -d /var/vcap/jobs ]; then
  mkdir -p "$store"
  chown vcap:vcap "$store" 2>/dev/null || true
fi
if mountpoint -q "$store" || grep -qs " $store " /etc/fstab || [ -n "$(ls -A "$store" 2>/dev/null)" ]; then
  echo "the store is still there after its deletion" >&2
  exit 1
fi
if [ -n "$dev" ] && [ -b "$dev" ] && blkid -p "$dev" >/dev/null 2>&1; then
  echo "$dev still holds a filesystem after wipefs" >&2
  exit 1
fi
echo "deleted the persistent disk"
`, kit.ShellQuote(device))
}
