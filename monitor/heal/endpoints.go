package heal

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// get answers GET /heal.
func (h *Healer) get(ctx context.Context, _ micro.Request) (int, any, error) {
	cfg, err := bus.LoadConfig(ctx, h.o.Res.Config)
	if err != nil && !bus.IsNotFound(err) {
		return 0, nil, err
	}
	r := policy.RulesOf(cfg)
	h.mu.Lock()
	defer h.mu.Unlock()
	return 200, h.st.View(r.Enabled), nil
}

// set answers PUT /heal: on lifts the meltdown guard and gives failing
// instances a new start; off holds every attempt.
func (h *Healer) set(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.HealSet
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	h.mu.Lock()
	note := h.st.Switch(in.Enabled, in.Actor, time.Now())
	h.markDirty()
	h.mu.Unlock()
	h.notify(note)
	return 200, contract.HealSwitched{Enabled: in.Enabled, Message: note.Message}, nil
}
