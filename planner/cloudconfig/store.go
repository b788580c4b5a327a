package cloudconfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Key is the cloud config's key in the engine's store (bus.KVEngine).
const Key = "cloud-config"

// ErrNone is a store without a cloud config.
var ErrNone = errors.New("no cloud config yet: give one with `deployment-engine cloud-config update FILE` (PUT /deployment-engine/cloud-config)")

// Load reads the stored cloud config; ErrNone when there is none.
func Load(ctx context.Context, kv jetstream.KeyValue) (contract.CloudConfig, error) {
	var cc contract.CloudConfig
	e, err := kv.Get(ctx, Key)
	if bus.IsNotFound(err) {
		return cc, ErrNone
	}
	if err != nil {
		return cc, fmt.Errorf("read the cloud config: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &cc); err != nil {
		return cc, fmt.Errorf("decode the stored cloud config: %w", err)
	}
	return cc, nil
}

// Store keeps cc, checked, in kv.
func Store(ctx context.Context, kv jetstream.KeyValue, cc contract.CloudConfig) error {
	b, err := json.Marshal(cc)
	if err != nil {
		return fmt.Errorf("encode the cloud config: %w", err)
	}
	if _, err := kv.Put(ctx, Key, b); err != nil {
		return fmt.Errorf("store the cloud config: %w", err)
	}
	return nil
}

// Book answers the cloud config's commands on the engine's store.
type Book struct {
	KV  jetstream.KeyValue
	Log *slog.Logger
	// Event records an operation for the operations log.
	Event func(ctx context.Context, kind, msg string)
}

// Endpoints are the book's commands by subject.
func (b Book) Endpoints() map[string]kit.Handler {
	return map[string]kit.Handler{
		subject.CloudConfigGet(): b.get,
		subject.CloudConfigPut(): b.put,
	}
}

func (b Book) get(ctx context.Context, _ micro.Request) (int, any, error) {
	cc, err := Load(ctx, b.KV)
	if errors.Is(err, ErrNone) {
		return 0, nil, &kit.Error{Code: 404, Msg: err.Error()}
	}
	if err != nil {
		return 0, nil, err
	}
	return 200, cc, nil
}

// put checks and stores a cloud config: 200 with it as stored, 400
// naming the field at fault.
func (b Book) put(ctx context.Context, req micro.Request) (int, any, error) {
	var in contract.CloudConfigPut
	if err := kit.Decode(req, &in); err != nil {
		return 0, nil, err
	}
	cc, err := Parse(in.Body)
	var ce *Error
	if errors.As(err, &ce) {
		return 0, nil, &kit.Error{Code: 400, Msg: err.Error(), Problems: []contract.Problem{{Path: ce.Path, Reason: ce.Reason}}}
	}
	if err := Store(ctx, b.KV, cc); err != nil {
		return 0, nil, err
	}
	n := 0
	for _, az := range cc.AZs {
		n += len(az.Machines)
	}
	b.Log.Info("cloud config stored", "azs", len(cc.AZs), "machines", n)
	if b.Event != nil {
		b.Event(ctx, "cloud-config", fmt.Sprintf("cloud config stored: %d machines in %d zones", n, len(cc.AZs)))
	}
	return 200, cc, nil
}
