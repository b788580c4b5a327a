package engine

import (
	"fmt"
	"log/slog"
	"os"
	"syscall"
)

// secureDataDir makes sure the data dir is the engine's alone: owned by
// its user and 0700, so that nothing running as another user (a release's
// templates render as nobody) reads its token, key or store. A dir made
// open by an older engine or by hand is closed; one owned by another user
// is refused.
func secureDataDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("data dir %s belongs to uid %d, not to the engine's user (uid %d): chown it to the engine's user", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: make it 0700: %w", dir, err)
	}
	log.Warn("data dir was open to other users: made 0700", "dir", dir, "was", fmt.Sprintf("%04o", fi.Mode().Perm()))
	return nil
}

// openDataDir makes the data dir, keeps it the engine's alone and, with
// the embedded store, locks it for this process while it serves.
func openDataDir(o Options) (unlock func(), err error) {
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", o.DataDir, err)
	}
	if err := secureDataDir(o.DataDir, o.Logger); err != nil {
		return nil, err
	}
	if o.NATSURL != "" {
		return func() {}, nil
	}
	// The embedded store is this process's alone while it serves.
	return lockData(o.DataDir)
}
