package heal

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/services/bus"
)

// stateKey is where auto-heal keeps its state in the DE_ENGINE bucket.
const stateKey = "heal"

// saveTries bounds the writes of one save that another writer may refuse.
const saveTries = 3

// kept is the stored state as last read or written: the revision a
// compare-and-set write is made at, and the base a refused one merges from.
type kept struct {
	rev  uint64
	data []byte
}

// base is the state kept holds; a fresh one when none does or it does not
// decode.
func (k kept) base() policy.State {
	st := policy.Fresh()
	if k.data != nil && json.Unmarshal(k.data, &st) != nil {
		st = policy.Fresh()
	}
	return st
}

// load reads the state an earlier run kept. A state that cannot be read
// is started afresh at revision 0: the first write then meets the stored
// one as a conflict and merges with it rather than replace it.
func (h *Healer) load(ctx context.Context) (policy.State, kept) {
	st := policy.Fresh()
	e, err := h.o.Res.Engine.Get(ctx, stateKey)
	if err != nil {
		if !bus.IsNotFound(err) {
			h.log.Warn("auto-heal's kept state does not read; starting afresh, merged with it at the first write", "err", err)
		}
		return st, kept{}
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		h.log.Warn("auto-heal's kept state does not decode; starting afresh", "err", err)
		st = policy.Fresh()
	}
	st.Resume()
	return st, kept{rev: e.Revision(), data: e.Value()}
}

// markDirty asks the keeper to write the state; h.mu may be held.
func (h *Healer) markDirty() {
	select {
	case h.dirty <- struct{}{}:
	default: // a write is asked already: it takes this change too
	}
}

// keep writes the state each time it changed, one write at a time, the
// latest state each time, outside h.mu.
func (h *Healer) keep() {
	defer h.wg.Done()
	for {
		select {
		case <-h.stop:
			return // Stop writes the last state
		case <-h.dirty:
			ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
			h.save(ctx)
			cancel()
		}
	}
}

// save writes the state as it is now, compare-and-set on the revision it
// was last read or written at. A write refused because another writer
// stored the state meanwhile is not forced: the healer takes that state,
// with its own changes merged in, and writes that.
func (h *Healer) save(ctx context.Context) {
	for try := 1; ; try++ {
		h.mu.Lock()
		b, err := json.Marshal(h.st)
		h.mu.Unlock()
		if err != nil {
			h.log.Error("encode auto-heal's state", "err", err)
			return
		}
		rev, err := bus.PutAt(ctx, h.o.Res.Engine, stateKey, b, h.kept.rev)
		if err == nil {
			h.kept = kept{rev: rev, data: b}
			return
		}
		if bus.IsConflict(err) && try < saveTries {
			err = h.rebase(ctx)
		}
		if err != nil {
			h.log.Warn("auto-heal's state not kept: a restart may forget what it held and counted", "err", err)
			return
		}
	}
}

// rebase reads the state another writer stored and takes it, merged with
// what this healer changed since it last read or wrote it. One deleted, or
// that does not decode, merges nothing: this healer's state is written over.
func (h *Healer) rebase(ctx context.Context) error {
	var theirs kept
	e, err := h.o.Res.Engine.Get(ctx, stateKey)
	switch {
	case bus.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("read the state another writer stored: %w", err)
	default:
		theirs = kept{rev: e.Revision(), data: e.Value()}
	}
	h.log.Warn("auto-heal's state was stored by another writer meanwhile: merging with it", "revision", theirs.rev)
	var st policy.State
	if theirs.data != nil && json.Unmarshal(theirs.data, &st) == nil {
		base := h.kept.base()
		h.mu.Lock()
		h.st = policy.Merge(base, h.st, st)
		h.mu.Unlock()
	}
	h.kept = theirs
	return nil
}
