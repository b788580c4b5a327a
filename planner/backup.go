package planner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/kit"
)

// backupTimeout bounds one scheduled backup.
const backupTimeout = 30 * time.Minute

// backupStamp names a backup by when it was made, in UTC; names sort in
// time order.
const backupStamp = "20060102-150405"

// scheduledBackup writes a backup of the cluster's store (bus.Backup: the
// file `deployment-engine restore` takes) to
// <BackupDir>/<schedule>-<UTC time>.tar, then deletes that schedule's
// oldest backups beyond keep. The file appears whole or not at all: it is
// written under a temporary name and renamed once synced.
func (p *Planner) scheduledBackup(ctx context.Context, schedule string, keep int) error {
	if p.o.BackupDir == "" {
		return kit.Errorf(501, "this planner has no backup directory: start the engine with its data dir to run scheduled backups")
	}
	ctx, cancel := context.WithTimeout(ctx, backupTimeout)
	defer cancel()
	if err := os.MkdirAll(p.o.BackupDir, 0o700); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	f, err := os.CreateTemp(p.o.BackupDir, ".incoming-*.tar")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmp := f.Name()
	defer func() { _ = os.Remove(tmp) }()
	streams, err := bus.Backup(ctx, p.o.NC, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	name := filepath.Join(p.o.BackupDir, schedule+"-"+p.scheduleNow().UTC().Format(backupStamp)+".tar")
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	info, _ := os.Stat(name)
	var size int64
	if info != nil {
		size = info.Size()
	}
	removed := pruneBackups(p.o.BackupDir, schedule, keep)
	p.log.Info("scheduled backup written", "schedule", schedule, "file", name, "streams", len(streams), "bytes", size, "removed", len(removed))
	p.engineEvent(ctx, "backup", fmt.Sprintf("schedule %s wrote backup %s (%d streams, %d bytes); %d older removed, the newest %d kept",
		schedule, name, len(streams), size, len(removed), keep))
	return nil
}

// pruneBackups deletes schedule's backups in dir but the newest keep, and
// returns the ones it deleted.
func pruneBackups(dir, schedule string, keep int) []string {
	matches, _ := filepath.Glob(filepath.Join(dir, schedule+"-*.tar"))
	// Another schedule's name may begin with this one's and a hyphen: only
	// a stamp may follow.
	matches = slices.DeleteFunc(matches, func(m string) bool {
		stamp := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), schedule+"-"), ".tar")
		_, err := time.Parse(backupStamp, stamp)
		return err != nil
	})
	slices.Sort(matches)
	if len(matches) <= keep {
		return nil
	}
	old := matches[:len(matches)-keep]
	for _, m := range old {
		_ = os.Remove(m)
	}
	return old
}
