package manifestdeploy

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/manifest"
	"github.com/deployment-engine/engine/services/bus"
)

// Key is the deployed manifest's record in the engine's store
// (bus.KVEngine). The engine holds one cluster: once several clusters
// exist, each manifest's name will name its cluster and its record.
const Key = bus.KeyManifest

// State is what the engine keeps of the manifest it deploys: its name,
// where its instances went, and the variables it generated, each sealed
// with the engine's key as the config's secrets are (bus.SealValue).
type State struct {
	Name      string              `json:"name"`
	Placement map[string][]string `json:"placement"`
	Variables map[string]string   `json:"variables,omitempty"`
	// Declared is how each variable was declared when generated;
	// Regenerate names those the next deploy generates anew.
	Declared   map[string]Declared `json:"declared,omitempty"`
	Regenerate []string            `json:"regenerate,omitempty"`
}

func sealName(name string) string { return "manifest-variable/" + name }

// Load reads the record and opens its variables; a store without one is
// an empty record.
func Load(ctx context.Context, kv jetstream.KeyValue) (State, manifest.Vars, error) {
	vars := manifest.Vars{}
	st, err := read(ctx, kv)
	if err != nil {
		return st, nil, err
	}
	for name, sealed := range st.Variables {
		plain, err := bus.OpenValue(sealName(name), sealed)
		if err != nil {
			return st, nil, fmt.Errorf("the manifest's variable %s: %w", name, err)
		}
		var v any
		if err := json.Unmarshal([]byte(plain), &v); err != nil {
			return st, nil, fmt.Errorf("the manifest's variable %s does not decode", name)
		}
		vars[name] = v
	}
	return st, vars, nil
}

// read reads the record, its variables sealed; a store without one is an
// empty record.
func read(ctx context.Context, kv jetstream.KeyValue) (State, error) {
	var st State
	e, err := kv.Get(ctx, Key)
	if bus.IsNotFound(err) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read the manifest's record: %w", err)
	}
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return st, fmt.Errorf("decode the manifest's record: %w", err)
	}
	return st, nil
}

// Store keeps the record of a deployed manifest, its variables sealed;
// pending are the names still marked to be generated anew.
func Store(ctx context.Context, kv jetstream.KeyValue, res Result, pending []string) error {
	st := State{Name: res.Name, Placement: res.Placement, Variables: map[string]string{}, Declared: res.Declared, Regenerate: pending}
	for n, v := range res.Kept {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode the manifest's variable %s", n)
		}
		st.Variables[n] = bus.SealValue(sealName(n), string(b))
	}
	return write(ctx, kv, st)
}

// write stores the record as it is.
func write(ctx context.Context, kv jetstream.KeyValue, st State) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode the manifest's record: %w", err)
	}
	if _, err := kv.Put(ctx, Key, b); err != nil {
		return fmt.Errorf("store the manifest's record: %w", err)
	}
	return nil
}
