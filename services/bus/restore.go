package bus

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Restore puts back every stream of a backup written by Backup, replacing
// a stream of the same name: all of them or none. It returns the streams
// restored.
//
// The whole backup is read and checked first (each entry's SHA-256 against
// the manifest and its format version, every snapshot decoded to its end,
// each stream named as its entry): a damaged one is refused with
// ErrBackupDamaged and nothing changed. Only then are the current streams
// the backup holds snapshotted into a file in undoDir (os.TempDir() when
// ""), and replaced one by one; when one fails, every stream touched is
// put back from that snapshot, and one the store did not have is removed.
// JetStream restores a snapshot only under the name it was taken with, and
// cannot rename a stream, so a backup cannot be restored beside the live
// streams and swapped in. The undo file is removed at the end, kept only
// when putting it back failed too (the error names it). An engine running
// on the store meanwhile loses what it wrote after the snapshot.
func Restore(ctx context.Context, nc *nats.Conn, r io.ReadSeeker, undoDir string) ([]string, error) {
	sums, err := checkBackup(r)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	undo, err := os.CreateTemp(undoDir, "restore-undo-*.tar")
	if err != nil {
		return nil, fmt.Errorf("keep the current streams before restoring: %w", err)
	}
	keep := false
	defer func() {
		undo.Close()
		if !keep {
			os.Remove(undo.Name())
		}
	}()
	had, undoSums, err := backup(ctx, nc, undo)
	if err != nil {
		return nil, fmt.Errorf("keep the current streams before restoring (nothing was changed): %w", err)
	}
	var touched []string
	done, err := replace(ctx, nc, r, sums, nil, func(name string) { touched = append(touched, name) })
	if err == nil {
		return done, nil
	}
	// Put back what was touched, even when ctx has ended.
	if rerr := putBack(context.WithoutCancel(ctx), nc, undo, had, undoSums, touched); rerr != nil {
		keep = true
		return nil, fmt.Errorf("%w; putting the previous streams back failed too: %v; they are kept in %s (restore that file)", err, rerr, undo.Name())
	}
	return nil, fmt.Errorf("%w; nothing was changed: the previous streams were put back", err)
}

// replace deletes and restores each stream of backup r (only those in
// only, when it is not nil), checking each entry against sums. touch is
// told of a stream before it is deleted.
func replace(ctx context.Context, nc *nats.Conn, r io.Reader, sums map[string]string, only map[string]bool, touch func(string)) ([]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	metas := map[string]streamMeta{}
	var done []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return done, nil
		}
		if err != nil {
			return done, fmt.Errorf("read backup: %w", err)
		}
		name, kind := entry(h.Name)
		if name == "" || (only != nil && !only[name]) {
			continue
		}
		hash := sha256.New()
		body := io.TeeReader(tr, hash)
		if kind == ".json" {
			m, err := readMeta(body, name)
			if err == nil {
				_, err = io.Copy(io.Discard, body)
			}
			if err == nil && hex.EncodeToString(hash.Sum(nil)) != sums[h.Name] {
				err = errors.New("changed since it was checked")
			}
			if err != nil {
				return done, fmt.Errorf("read backup %s: %w", h.Name, err)
			}
			metas[name] = m
			continue
		}
		touch(name)
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return done, fmt.Errorf("restore %s: remove the current stream: %w", name, err)
		}
		if err := restore(ctx, nc, name, metas[name], body); err != nil {
			return done, fmt.Errorf("restore %s: %w", name, err)
		}
		if hex.EncodeToString(hash.Sum(nil)) != sums[h.Name] {
			return done, fmt.Errorf("restore %s: the backup changed since it was checked", name)
		}
		done = append(done, name)
	}
}

// putBack restores the streams touched from the undo backup; one the
// store did not have before is removed.
func putBack(ctx context.Context, nc *nats.Conn, undo io.ReadSeeker, had []string, sums map[string]string, touched []string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	only := map[string]bool{}
	for _, name := range touched {
		if slices.Contains(had, name) {
			only[name] = true
		} else if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if _, err := undo.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = replace(ctx, nc, undo, sums, only, func(string) {})
	return err
}

// restore sends one stream's snapshot from r to the server, chunk by
// chunk, through the JetStream API.
func restore(ctx context.Context, nc *nats.Conn, name string, m streamMeta, r io.Reader) error {
	req, _ := json.Marshal(m)
	rep, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.RESTORE."+name, req)
	if err != nil {
		return fmt.Errorf("ask to restore: %w", err)
	}
	var rr struct {
		apiError
		DeliverSubject string `json:"deliver_subject"`
	}
	if err := json.Unmarshal(rep.Data, &rr); err != nil {
		return fmt.Errorf("restore answer: %w", err)
	}
	if err := rr.err(); err != nil {
		return err
	}
	buf := make([]byte, 128<<10)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			ack, err := nc.Request(rr.DeliverSubject, buf[:n], 30*time.Second)
			if err != nil {
				return fmt.Errorf("send a chunk: %w", err)
			}
			if len(ack.Data) > 0 {
				var ae apiError
				if json.Unmarshal(ack.Data, &ae) == nil && ae.err() != nil {
					return ae.err()
				}
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	end, err := nc.Request(rr.DeliverSubject, nil, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	var ae apiError
	if err := json.Unmarshal(end.Data, &ae); err != nil {
		return fmt.Errorf("restore result: %w", err)
	}
	return ae.err()
}
