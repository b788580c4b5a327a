package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// KeySecretHosts is the key of the contract.SecretHosts record in KVEngine.
const KeySecretHosts = "secret-hosts"

// LoadSecretHosts reads which nodes each secret was given for. An engine
// whose store predates the record trusts, for every secret, the nodes whose
// host keys it has pinned: those it has already logged in to.
func LoadSecretHosts(ctx context.Context, res *Resources) (contract.SecretHosts, error) {
	out := contract.SecretHosts{V: contract.Version, Hosts: map[string][]string{}}
	e, err := res.Engine.Get(ctx, KeySecretHosts)
	if err == nil {
		if err := json.Unmarshal(e.Value(), &out); err != nil {
			return out, fmt.Errorf("decode %s: %w", KeySecretHosts, err)
		}
		if out.Hosts == nil {
			out.Hosts = map[string][]string{}
		}
		return out, nil
	}
	if !IsNotFound(err) {
		return out, fmt.Errorf("read %s: %w", KeySecretHosts, err)
	}
	keys, err := res.HostKeys.ListKeys(ctx)
	if err != nil {
		return out, fmt.Errorf("list pinned host keys: %w", err)
	}
	var pinned []string
	for k := range keys.Keys() {
		if ip, err := subject.TokenIP(k); err == nil {
			pinned = append(pinned, ip)
		}
	}
	for _, name := range contract.OfferedSecrets {
		out.Hosts[name] = pinned
	}
	return out, nil
}

// StoreSecretHosts keeps the record.
func StoreSecretHosts(ctx context.Context, kv jetstream.KeyValue, s contract.SecretHosts) error {
	s.V = contract.Version
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, KeySecretHosts, b); err != nil {
		return fmt.Errorf("store %s: %w", KeySecretHosts, err)
	}
	return nil
}
