package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
)

// KeyMaintenance is the key of the contract.Maintenances record in
// KVEngine: every process of a split engine (planner, monitor, auto-heal)
// reads the nodes in maintenance there.
const KeyMaintenance = "maintenance"

// KeyManifest is the key, in KVEngine, of the deployed manifest's record
// (the planner's; contract.ManifestRecord is what others read of it).
const KeyManifest = "manifest"

// maintenanceTries bounds the compare-and-set writes of one change.
const maintenanceTries = 5

// LoadMaintenance reads the nodes in maintenance, and the revision the
// record was read at (0: none stored, which holds no node).
func LoadMaintenance(ctx context.Context, kv jetstream.KeyValue) (contract.Maintenances, uint64, error) {
	out := contract.Maintenances{V: contract.Version, Nodes: map[string]contract.NodeMaintenance{}}
	rev, err := loadJSON(ctx, kv, KeyMaintenance, &out)
	if out.Nodes == nil {
		out.Nodes = map[string]contract.NodeMaintenance{}
	}
	return out, rev, err
}

// UpdateMaintenance changes the record with change, compare-and-set, and
// tries again on the record another writer stored meanwhile: two planners
// putting two nodes in maintenance at once both keep theirs. An error from
// change ends it, nothing written.
func UpdateMaintenance(ctx context.Context, kv jetstream.KeyValue, change func(*contract.Maintenances) error) (contract.Maintenances, error) {
	for try := 1; ; try++ {
		m, rev, err := LoadMaintenance(ctx, kv)
		if err != nil {
			return m, err
		}
		if err := change(&m); err != nil {
			return m, err
		}
		m.V = contract.Version
		b, err := json.Marshal(m)
		if err != nil {
			return m, err
		}
		_, err = PutAt(ctx, kv, KeyMaintenance, b, rev)
		if err == nil {
			return m, nil
		}
		if !IsConflict(err) || try >= maintenanceTries {
			return m, fmt.Errorf("store %s: %w", KeyMaintenance, err)
		}
	}
}
