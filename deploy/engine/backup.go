package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/bus"
)

// lockData takes the data dir's lock: one process at a time may run the
// embedded store in it (the engine while it serves, or backup and restore
// while it is stopped).
func lockData(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "engine.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the data dir's lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("an engine is running on %s: stop it first", dir)
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// StoreAccess says which store backup and restore work on: the embedded
// one in DataDir (the engine must be stopped), or the NATS server at
// NATSURL (the engine may run; restore replaces its streams under it).
type StoreAccess struct {
	DataDir string
	NATSURL string
}

func (a StoreAccess) open(ctx context.Context) (*nats.Conn, func(), error) {
	if a.NATSURL != "" {
		nc, err := bus.Dial(a.NATSURL, "deployment-engine-backup")
		if err != nil {
			return nil, nil, err
		}
		return nc, nc.Close, nil
	}
	unlock, err := lockData(a.DataDir)
	if err != nil {
		return nil, nil, err
	}
	// The store is encrypted with the engine's key, and the config's
	// secrets sealed with it.
	key, err := loadEngineKey(a.DataDir)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	bus.SetSealKey(key.derive("config-seal"))
	srv, err := bus.StartServer(ctx, bus.ServerOptions{DataDir: a.DataDir, EncryptionKey: key.storeKey()})
	if err != nil {
		unlock()
		return nil, nil, err
	}
	nc, err := srv.Connect("deployment-engine-backup")
	if err != nil {
		srv.Stop()
		unlock()
		return nil, nil, err
	}
	return nc, func() { nc.Close(); srv.Stop(); unlock() }, nil
}

// Backup writes the engine's streams and buckets to w; see bus.Backup.
func Backup(ctx context.Context, a StoreAccess, w io.Writer) ([]string, error) {
	nc, done, err := a.open(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	return bus.Backup(ctx, nc, w)
}

// Restore puts a backup's streams and buckets back, all or none; see
// bus.Restore. The current streams are kept meanwhile in the data dir, or
// the temporary directory with --nats.
func Restore(ctx context.Context, a StoreAccess, r io.ReadSeeker) ([]string, error) {
	nc, done, err := a.open(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	undoDir := a.DataDir
	if a.NATSURL != "" {
		undoDir = ""
	}
	return bus.Restore(ctx, nc, r, undoDir)
}
