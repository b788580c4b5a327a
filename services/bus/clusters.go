package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// DefaultCluster lives in the server's global account, where every stream
// and bucket lived before an engine held several clusters: a data dir of
// then opens as it.
const DefaultCluster = contract.DefaultCluster

// Each named cluster lives in a NATS account of its own: its services
// declare the very streams and buckets, and use the very subjects, the
// default cluster's do, and see nothing of another cluster's. The engine
// connects to a cluster's account as engineUserPrefix+name, and a node's
// agent lands in the account of the cluster that holds its node.
const (
	accountPrefix    = "cluster-"
	engineUserPrefix = EngineUser + "@"
)

// clusterAccount is the account of a named cluster, registered with
// JetStream on first use (its streams, on disk from an earlier run, come
// back with it).
func (s *Server) clusterAccount(name string) (*server.Account, error) {
	if err := contract.CheckClusterName(name); err != nil || name == DefaultCluster {
		return nil, fmt.Errorf("bus: no account for cluster %q: %v", contract.Clip(name), err)
	}
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	if acc := s.auth.accounts[name]; acc != nil {
		return acc, nil
	}
	acc, err := s.RegisterAccount(accountPrefix + name)
	if err != nil {
		return nil, fmt.Errorf("bus: account of cluster %s: %w", name, err)
	}
	// No limits: the account takes what the server has, as the global
	// account does.
	if err := acc.EnableJetStream(nil, nil); err != nil {
		return nil, fmt.Errorf("bus: JetStream for cluster %s: %w", name, err)
	}
	// The global account sees the cluster's events under a prefix of its
	// own: the observer follows one cluster with one subscription.
	if err := acc.AddStreamExport(subject.AllEvents, []*server.Account{s.GlobalAccount()}); err != nil {
		return nil, fmt.Errorf("bus: export cluster %s's events: %w", name, err)
	}
	if err := s.GlobalAccount().AddMappedStreamImport(acc, subject.AllEvents, subject.ClusterEvents(name)); err != nil {
		return nil, fmt.Errorf("bus: import cluster %s's events: %w", name, err)
	}
	if s.auth.accounts == nil {
		s.auth.accounts = map[string]*server.Account{}
	}
	s.auth.accounts[name] = acc
	return acc, nil
}

// ConnectCluster opens an in-process connection of the engine's in the
// account of cluster name (DefaultCluster: as Connect).
func (s *Server) ConnectCluster(cluster, conn string) (*nats.Conn, error) {
	if cluster == DefaultCluster {
		return s.Connect(conn)
	}
	if _, err := s.clusterAccount(cluster); err != nil {
		return nil, err
	}
	nc, err := nats.Connect("", nats.InProcessServer(s.Server), nats.Name(conn+"@"+cluster), nats.MaxReconnects(-1),
		nats.UserInfo(engineUserPrefix+cluster, s.auth.enginePass))
	if err != nil {
		return nil, fmt.Errorf("bus: connect in-process to cluster %s: %w", cluster, err)
	}
	return nc, nil
}

// SetAgentClusters tells the server which cluster holds a node: its
// agent is let into that cluster's account ("" or DefaultCluster: the
// default's). An agent already connected stays where it was until it
// reconnects (DisconnectAgent).
func (s *Server) SetAgentClusters(of func(ip string) string) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	s.auth.clusterOf = of
}

// accountFor is the account a user of the engine's or a node's agent
// belongs in: nil for the global one, ok false for a cluster that has no
// account in this server.
func (a *auth) accountFor(cluster string) (acc *server.Account, ok bool) {
	if cluster == "" || cluster == DefaultCluster {
		return nil, true
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	acc = a.accounts[cluster]
	return acc, acc != nil
}

// engineCluster is the cluster an engine's user name connects to.
func engineCluster(user string) (string, bool) {
	if user == EngineUser {
		return DefaultCluster, true
	}
	return strings.CutPrefix(user, engineUserPrefix)
}

// clusterKeyPrefix starts the keys of the named clusters' records in the
// default cluster's KVEngine: cluster.<name>, a contract.Cluster each.
const clusterKeyPrefix = "cluster."

// ErrClusterExists answers the creation of a cluster already made.
var ErrClusterExists = errors.New("bus: the cluster exists")

// CreateCluster records a new named cluster in kv (the default cluster's
// KVEngine); ErrClusterExists when it was made already.
func CreateCluster(ctx context.Context, kv jetstream.KeyValue, c contract.Cluster) error {
	if err := contract.CheckClusterName(c.Name); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := kv.Create(ctx, clusterKeyPrefix+c.Name, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrClusterExists
		}
		return fmt.Errorf("bus: record cluster %s: %w", c.Name, err)
	}
	return nil
}

// NamedClusters are the records of the named clusters in kv, by name.
func NamedClusters(ctx context.Context, kv jetstream.KeyValue) ([]contract.Cluster, error) {
	lister, err := kv.ListKeysFiltered(ctx, clusterKeyPrefix+">")
	if err != nil {
		return nil, fmt.Errorf("bus: list clusters: %w", err)
	}
	var out []contract.Cluster
	for key := range lister.Keys() {
		var c contract.Cluster
		if _, err := loadJSON(ctx, kv, key, &c); err != nil {
			return nil, err
		}
		if contract.CheckClusterName(c.Name) == nil && c.Name != DefaultCluster {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b contract.Cluster) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// DeleteCluster forgets a named cluster's record.
func DeleteCluster(ctx context.Context, kv jetstream.KeyValue, name string) error {
	if err := kv.Delete(ctx, clusterKeyPrefix+name); err != nil {
		return fmt.Errorf("bus: forget cluster %s: %w", name, err)
	}
	return nil
}

// PutCluster writes a named cluster's record as it now is.
func PutCluster(ctx context.Context, kv jetstream.KeyValue, c contract.Cluster) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, clusterKeyPrefix+c.Name, b); err != nil {
		return fmt.Errorf("bus: record cluster %s: %w", c.Name, err)
	}
	return nil
}
