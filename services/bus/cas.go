package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
)

// IsConflict tells whether err is a compare-and-set write the store refused
// because the key is no longer at the revision the write was computed from
// (or, for a create, exists already): another writer got there first.
func IsConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	// A replicated stream reports the conflict under a code of its own.
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// PutAt writes value under key only if the key is still at revision rev,
// as read: rev 0 means it was not there (a create, which also takes the
// place of a deleted key). It returns the new revision; a refused write is
// an error IsConflict recognises.
func PutAt(ctx context.Context, kv jetstream.KeyValue, key string, value []byte, rev uint64) (uint64, error) {
	if rev == 0 {
		return kv.Create(ctx, key, value)
	}
	return kv.Update(ctx, key, value, rev)
}

// Revision is the revision of key, for a compare-and-set write of a value
// computed without reading it: 0 when the key is absent or deleted. Any
// other failure to read is an error, never taken for absence.
func Revision(ctx context.Context, kv jetstream.KeyValue, key string) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	return e.Revision(), nil
}

// loadJSON decodes key's record into v and returns the revision it was
// read at, for PutAt: 0, v untouched, when the key is absent or deleted.
func loadJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (uint64, error) {
	e, err := kv.Get(ctx, key)
	if IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return e.Revision(), nil
}

// LoadConfigRev is LoadConfig with the revision the config was read at,
// for StoreConfigAt.
func LoadConfigRev(ctx context.Context, kv jetstream.KeyValue) (contract.Config, uint64, error) {
	e, err := kv.Get(ctx, KeyConfig)
	if err != nil {
		return contract.Config{}, 0, fmt.Errorf("read the config: %w", err)
	}
	cfg, err := DecodeConfig(e.Value())
	if err != nil {
		return contract.Config{}, 0, err
	}
	return cfg, e.Revision(), nil
}

// StoreConfigAt keeps cfg in its bucket, its secrets sealed, only if the
// stored config is still at revision rev (0: none is stored). It returns
// the new revision; a config stored meanwhile by another writer is an
// error IsConflict recognises, and nothing is written.
func StoreConfigAt(ctx context.Context, kv jetstream.KeyValue, cfg contract.Config, rev uint64) (uint64, error) {
	b, err := EncodeConfig(cfg)
	if err != nil {
		return 0, err
	}
	n, err := PutAt(ctx, kv, KeyConfig, b, rev)
	if err != nil {
		return 0, fmt.Errorf("store config: %w", err)
	}
	return n, nil
}

// ErrUnsure marks a compare-and-set write refused on a revision read from
// a replica that may lag the stream's leader: whether another writer got
// there first is not known, and the write is to be tried again.
var ErrUnsure = errors.New("the store's replicas disagree for now")
