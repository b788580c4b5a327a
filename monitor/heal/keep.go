package heal

import (
	"context"
	"encoding/json"
	"time"

	"github.com/deployment-engine/engine/monitor/heal/policy"
)

// stateKey is where auto-heal keeps its state in the DE_ENGINE bucket.
const stateKey = "heal"

// kept is the stored state as last read or written.
type kept struct {
	rev  uint64
	data []byte
}

// load reads the state an earlier run kept.
func (h *Healer) load(ctx context.Context) (policy.State, kept) {
	st := policy.Fresh()
	e, err := h.o.Res.Engine.Get(ctx, stateKey)
	if err != nil {
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

// save writes the state as it is now.
func (h *Healer) save(ctx context.Context) {
	h.mu.Lock()
	b, err := json.Marshal(h.st)
	h.mu.Unlock()
	if err != nil {
		h.log.Error("encode auto-heal's state", "err", err)
		return
	}
	if _, err := h.o.Res.Engine.Put(ctx, stateKey, b); err != nil {
		h.log.Warn("auto-heal's state not kept: a restart may forget what it held and counted", "err", err)
	}
}
