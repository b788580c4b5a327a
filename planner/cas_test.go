package planner

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// hookedGet runs hook once, after the first read of key: a write of
// another process lands between a reader's read and its write.
type hookedGet struct {
	jetstream.KeyValue
	key  string
	hook func()
}

func (h *hookedGet) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	e, err := h.KeyValue.Get(ctx, key)
	if key == h.key && h.hook != nil {
		hook := h.hook
		h.hook = nil
		hook()
	}
	return e, err
}

type rawRequest struct {
	micro.Request
	data []byte
}

func (r rawRequest) Data() []byte { return r.data }

// Two config writes computed from the same stored config, by two planners
// (a split engine's two api,planner processes, whose locks are their
// own): the one that stores second gets a 409, and the stored config is
// the first's; neither write is lost without its writer being told.
func TestConfigWritesDoNotCross(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	first := startStarter(t, b)
	defer first.Stop()
	put := func(p *Planner, domain string) (int, error) {
		cfg := starterConfig()
		cfg.Properties.Domain = domain
		raw, _ := json.Marshal(cfg)
		in, _ := json.Marshal(contract.ConfigPut{V: contract.Version, Config: raw})
		code, _, err := p.configPut(ctx, rawRequest{data: in})
		return code, err
	}
	res := *b.Res
	kv := &hookedGet{KeyValue: b.Res.Config, key: bus.KeyConfig}
	res.Config = kv
	second := &Planner{o: first.o, log: first.log, secretKey: first.secretKey}
	second.o.Res = &res
	var firstCode int
	var firstErr error
	kv.hook = func() { firstCode, firstErr = put(first, "first.local") }
	code, err := put(second, "second.local")
	if firstErr != nil || firstCode != 201 {
		t.Fatalf("the first write: %d %v", firstCode, firstErr)
	}
	var ke *kit.Error
	if !errors.As(err, &ke) || ke.Code != 409 {
		t.Fatalf("the write computed from the config the first replaced: %d %v", code, err)
	}
	stored, err := bus.LoadConfig(ctx, b.Res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Properties.Domain != "first.local" {
		t.Errorf("stored: %q", stored.Properties.Domain)
	}
}
