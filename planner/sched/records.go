package sched

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
)

// How a record reaches DE_DEPLOYMENTS and is read back (see changes.go for
// what a change holds). Every write is a compare-and-set, as the deploy
// lock's takeover needs (takeOverLocked): the base is written on the
// revision it was read at, and change n is written only if <id>.<n> has
// never been written, not even deleted, so that two schedulers that both
// believe they drive a deployment never both store their n-th change: the
// second is refused, and lets go of the deployment.

// changeKey is the key of the n-th change of deployment id.
func changeKey(id string, n int) string { return id + "." + strconv.Itoa(n) }

// readRecord reads deployment id without its steps' specs: its base or
// whole record, then its changes in order. rec.rev is the base's revision,
// rec.seq the last change's number, on which its next writes are made.
func readRecord(ctx context.Context, res *bus.Resources, id string) (*Record, error) {
	e, err := res.Deployments.Get(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read deployment %s: %w", id, err)
	}
	rec := &Record{rev: e.Revision()}
	if err := json.Unmarshal(e.Value(), rec); err != nil {
		return nil, fmt.Errorf("decode deployment %s: %w", id, err)
	}
	rec.reindex()
	if !rec.Changes {
		return rec, nil // a whole record: as stored before changes, or compacted
	}
	changes, err := readChanges(ctx, res, id)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if !rec.applyChange(c) {
			return nil, fmt.Errorf("decode deployment %s: change %d names a step or batch it does not have", id, c.Seq)
		}
		rec.seq = c.Seq
	}
	rec.stored = rec.snapshotStored()
	return rec, nil
}

// readChanges reads every change stored for deployment id, in order.
// Each holds the whole value of what it names, so any of them applied in
// order over the base ends where the last one left the record.
func readChanges(ctx context.Context, res *bus.Resources, id string) ([]change, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w, err := res.Deployments.Watch(ctx, id+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read the changes of deployment %s: %w", id, err)
	}
	defer func() { _ = w.Stop() }()
	var out []change
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("read the changes of deployment %s: %w", id, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("read the changes of deployment %s: the watch ended", id)
			}
			if e == nil { // every stored change has been delivered
				sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
				return out, nil
			}
			var c change
			n, nerr := strconv.Atoi(strings.TrimPrefix(e.Key(), id+"."))
			if err := json.Unmarshal(e.Value(), &c); err != nil || nerr != nil || c.Seq != n {
				return nil, fmt.Errorf("decode deployment %s: change %s does not decode: %v", id, e.Key(), err)
			}
			out = append(out, c)
		}
	}
}

// storeRecord writes what changed in rec, as writer's (a scheduler's),
// since it was read or last written: a record never stored in this form
// (a new one, or a whole record an older engine stored) is written whole
// as the base, on its revision (rec.rev; 0 creates it); one that was gets
// its next change (rec.seq+1), even an empty one: a takeover's write that
// fences off the scheduler that drove it before. A record written
// meanwhile by another writer is not overwritten: the write is refused
// with an error bus.IsConflict recognises. One that writer stored itself
// is its own write that timed out but was stored all the same (a cluster
// electing a leader): written over, or followed.
func storeRecord(ctx context.Context, res *bus.Resources, rec *Record, writer string) error {
	rec.Writer = writer
	if !rec.Changes {
		return storeBase(ctx, res, rec, writer)
	}
	c, _ := rec.diff()
	c.Writer = writer
	for try := 1; ; try++ {
		c.Seq = rec.seq + 1
		b, err := json.Marshal(c)
		if err != nil {
			return err
		}
		_, err = res.Deployments.Update(ctx, changeKey(rec.ID, c.Seq), b, 0)
		if err == nil {
			rec.seq, rec.stored = c.Seq, rec.snapshotStored()
			return nil
		}
		if !bus.IsConflict(err) || writer == "" {
			return fmt.Errorf("store deployment %s: %w", rec.ID, err)
		}
		e, gerr := res.Deployments.Get(ctx, changeKey(rec.ID, c.Seq))
		if gerr != nil {
			// Whose it is cannot be read: a store without quorum, or a
			// replica behind the one that refused the write (its own
			// write, timed out, may be stored all the same), or purged
			// once its deployment ended. Not known to be another's, so
			// not let go of: tried again, and refused again, until the
			// deploy lock says whose the deployment is (watchLocked).
			return fmt.Errorf("store deployment %s: change %d is taken and cannot be read: %w: %w", rec.ID, c.Seq, gerr, bus.ErrUnsure)
		}
		var last change
		if json.Unmarshal(e.Value(), &last) != nil || last.Writer != writer {
			return fmt.Errorf("store deployment %s: %w", rec.ID, err) // another's
		}
		if try == 3 {
			return fmt.Errorf("store deployment %s: its own change %d read back again: %w", rec.ID, c.Seq, bus.ErrUnsure)
		}
		// Its own, stored after it timed out: this change follows it, and
		// holds all it held.
		rec.seq = c.Seq
	}
}

// storeBase writes rec whole, marked to be followed by its changes, on
// the revision it was read at.
func storeBase(ctx context.Context, res *bus.Resources, rec *Record, writer string) error {
	rec.Changes, rec.seq = true, 0
	b, err := json.Marshal(rec)
	if err != nil {
		rec.Changes = false
		return err
	}
	rev, err := bus.PutAt(ctx, res.Deployments, rec.ID, b, rec.rev)
	if bus.IsConflict(err) && writer != "" {
		if e, gerr := res.Deployments.Get(ctx, rec.ID); gerr == nil {
			var last struct {
				Writer string `json:"writer"`
			}
			if json.Unmarshal(e.Value(), &last) == nil && last.Writer == writer {
				rev, err = bus.PutAt(ctx, res.Deployments, rec.ID, b, e.Revision())
				if bus.IsConflict(err) {
					// Read from a replica behind the stream's leader: not
					// known to be another's; tried again.
					err = fmt.Errorf("read one revision behind its last write: %w", bus.ErrUnsure)
				}
			}
		}
	}
	if err != nil {
		rec.Changes = false
		return fmt.Errorf("store deployment %s: %w", rec.ID, err)
	}
	rec.rev, rec.stored = rev, rec.snapshotStored()
	return nil
}

// compactRecord writes rec, a finished deployment whose every change is
// stored, back as one whole record under its id, on its base's revision,
// so that reading it takes one read; then its changes are purged (each
// leaves a marker, which keeps a later write of that change refused).
// Until the purge is over, a reader reads the whole record alone.
func compactRecord(ctx context.Context, res *bus.Resources, rec *Record) error {
	if !rec.Changes {
		return nil
	}
	whole := *rec
	whole.Changes = false
	b, err := json.Marshal(&whole)
	if err != nil {
		return err
	}
	if _, err := res.Deployments.Update(ctx, rec.ID, b, rec.rev); err != nil {
		if bus.IsConflict(err) {
			return nil // compacted by an earlier attempt whose answer was lost
		}
		return fmt.Errorf("compact deployment %s: %w", rec.ID, err)
	}
	return nil
}

// purgeChanges purges changes 1..upto of deployment id, in order, so that
// what remains of them is always the last ones.
func purgeChanges(ctx context.Context, res *bus.Resources, id string, upto int) error {
	for n := 1; n <= upto; n++ {
		if err := res.Deployments.Purge(ctx, changeKey(id, n)); err != nil && !bus.IsNotFound(err) {
			return fmt.Errorf("purge change %d of deployment %s: %w", n, id, err)
		}
	}
	return nil
}
