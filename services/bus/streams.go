package bus

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Streams and KV buckets: every one the engine uses is declared here.
const (
	StreamSteps  = "DE_STEPS"
	StreamEvents = "DE_EVENTS"
	// StreamAudit keeps the audit entries of DE_EVENTS for a year, out of
	// reach of the event stream's size limit.
	StreamAudit = "DE_AUDIT"

	// KVConfig holds the cluster config under key KeyConfig.
	KVConfig = "DE_CONFIG"
	// KVDeployments holds one record per deployment (plan and step states),
	// keyed by its id, and the changes that follow it while it runs
	// (<id>.<n>), and nothing else.
	KVDeployments = "DE_DEPLOYMENTS"
	// KVScheduler holds the scheduler's bookkeeping: which deployment runs,
	// the deploy lock, where components run, each deployment's steps.
	KVScheduler = "DE_SCHEDULER"
	// KVOwners maps a node IP token to the id of the engine that installed it.
	KVOwners = "DE_OWNERS"
	// KVHostKeys pins each node's SSH host key on first contact.
	KVHostKeys = "DE_HOSTKEYS"
	// KVNodes holds the latest state of every node, as the monitor last saw it.
	KVNodes = "DE_NODES"
	// KVEngine holds the engine's own identity and settings.
	KVEngine = "DE_ENGINE"

	// ObjReleases holds the uploaded BOSH releases (release.MF, jobs and
	// packages), so that every API process of a split engine serves them.
	ObjReleases = "DE_RELEASES"
	// ObjCopies holds the files a copy read back from nodes (copy --from),
	// one object per deployment and node (CopyObject), for an hour: a
	// deployment record holds their checksums, never their content.
	ObjCopies = "DE_COPIES"
)

// CopiesTTL is how long a file read back from a node is kept.
const CopiesTTL = time.Hour

// CopyObject is the name, in ObjCopies, of the file deployment read back
// from node.
func CopyObject(deployment, node string) string { return deployment + "/" + node }

// KeyConfig is the key of the config in KVConfig.
const KeyConfig = "cluster"

// Resources are the opened streams and buckets.
type Resources struct {
	JS          jetstream.JetStream
	Steps       jetstream.Stream
	Events      jetstream.Stream
	Audit       jetstream.Stream
	Config      jetstream.KeyValue
	Deployments jetstream.KeyValue
	Scheduler   jetstream.KeyValue
	Owners      jetstream.KeyValue
	HostKeys    jetstream.KeyValue
	Nodes       jetstream.KeyValue
	Engine      jetstream.KeyValue
	Releases    jetstream.ObjectStore
	Copies      jetstream.ObjectStore
	// Replicas is how many servers keep each stream and bucket.
	Replicas int
}

// Declare creates or updates every stream and bucket and returns them.
// It is idempotent: every service may call it at start. Each is kept on
// as many servers as the options say (see WithReplicas); one that exists
// with fewer is raised in place, its messages kept. What the cluster is
// not ready for yet is tried again, with back-off, until ctx ends.
func Declare(ctx context.Context, nc *nats.Conn, opts ...DeclareOption) (*Resources, error) {
	var o declareOptions
	for _, f := range opts {
		f(&o)
	}
	want, err := o.resolve(nc)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("bus: jetstream: %w", err)
	}
	r := &Resources{JS: js, Replicas: want}
	d := declarer{js: js, log: o.log, want: want}
	for _, st := range r.streams() {
		if err := d.declare(ctx, "stream "+st.cfg.Name, st.cfg.Name, func(ctx context.Context, n int) (err error) {
			cfg := st.cfg
			cfg.Replicas = n
			*st.dst, err = js.CreateOrUpdateStream(ctx, cfg)
			return err
		}); err != nil {
			return nil, err
		}
	}
	for _, k := range r.buckets() {
		if err := d.declare(ctx, "kv "+k.name, "KV_"+k.name, func(ctx context.Context, n int) (err error) {
			*k.dst, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: k.name, Description: k.desc, History: k.history, Storage: jetstream.FileStorage, Replicas: n,
			})
			return err
		}); err != nil {
			return nil, err
		}
	}
	if err := d.declare(ctx, "object store "+ObjReleases, "OBJ_"+ObjReleases, func(ctx context.Context, n int) (err error) {
		r.Releases, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: ObjReleases, Description: "uploaded BOSH releases: release.MF, jobs and packages", Storage: jetstream.FileStorage, Replicas: n,
		})
		return err
	}); err != nil {
		return nil, err
	}
	if err := d.declare(ctx, "object store "+ObjCopies, "OBJ_"+ObjCopies, func(ctx context.Context, n int) (err error) {
		r.Copies, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: ObjCopies, Description: "files read back from nodes by copy --from, kept an hour", TTL: CopiesTTL,
			MaxBytes: 1 << 30, Storage: jetstream.FileStorage, Replicas: n,
		})
		return err
	}); err != nil {
		return nil, err
	}
	return r, nil
}

// declarer declares one stream or bucket at a time on want servers.
type declarer struct {
	js   jetstream.JetStream
	log  *slog.Logger
	want int
}

// declare runs f with the replicas stream name is to have, until it
// succeeds or ctx ends. Each is waited for on its own, and named in the
// wait's log: a cluster that is still forming or electing leaders answers
// "not yet" (see NotYet) for a while, and a process started with it waits
// rather than dies; how long is ctx's to say.
func (d declarer) declare(ctx context.Context, what, name string, f func(ctx context.Context, replicas int) error) error {
	if err := Await(ctx, d.log, what, func(ctx context.Context) error {
		n, err := raised(ctx, d.js, name, d.want)
		if err != nil {
			return err
		}
		return f(ctx, n)
	}); err != nil {
		return fmt.Errorf("bus: %s: %w", what, err)
	}
	return nil
}

// streamSpec is one of the engine's streams, and the field of Resources it
// opens into.
type streamSpec struct {
	dst *jetstream.Stream
	cfg jetstream.StreamConfig
}

// streams are the engine's streams, replicas aside.
func (r *Resources) streams() []streamSpec {
	return []streamSpec{
		{&r.Steps, jetstream.StreamConfig{
			Name:        StreamSteps,
			Description: "deployment steps waiting for an installer",
			Subjects:    []string{subject.AllSteps},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Duplicates:  time.Hour,
		}},
		{&r.Events, jetstream.StreamConfig{
			Name:        StreamEvents,
			Description: "everything that happened: deployments, steps, log lines, nodes, components",
			Subjects:    []string{subject.AllEvents},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      7 * 24 * time.Hour,
			MaxBytes:    1 << 30,
			Discard:     jetstream.DiscardOld,
		}},
		// Audit entries are published on de.evt.audit.> like every event,
		// and sourced from there: one subject may belong to one stream only.
		{&r.Audit, jetstream.StreamConfig{
			Name:        StreamAudit,
			Description: "the audit trail: every change through the API and every heal, kept a year",
			Sources:     []*jetstream.StreamSource{{Name: StreamEvents, FilterSubject: subject.AllAudit}},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			MaxAge:      365 * 24 * time.Hour,
			MaxBytes:    256 << 20,
			Discard:     jetstream.DiscardOld,
		}},
	}
}

// bucketSpec is one of the engine's KV buckets, and the field of Resources
// it opens into.
type bucketSpec struct {
	dst     *jetstream.KeyValue
	name    string
	desc    string
	history uint8
}

// buckets are the engine's KV buckets.
func (r *Resources) buckets() []bucketSpec {
	return []bucketSpec{
		{&r.Config, KVConfig, "the cluster config", 5},
		{&r.Deployments, KVDeployments, "deployments: plans and step states", 1},
		{&r.Scheduler, KVScheduler, "the scheduler's bookkeeping: current deployment, deploy lock, placement, steps", 1},
		{&r.Owners, KVOwners, "which engine owns each node", 1},
		{&r.HostKeys, KVHostKeys, "pinned SSH host keys", 1},
		{&r.Nodes, KVNodes, "latest node and component state", 1},
		{&r.Engine, KVEngine, "the engine's identity", 1},
	}
}

// IsNotFound tells whether err means a KV key does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}

// ErrBadConfig marks a stored config that does not decode.
var ErrBadConfig = errors.New("the stored config does not decode")

// LoadConfig reads the cluster config from its bucket. A missing one is an
// error IsNotFound recognises; one that does not decode wraps ErrBadConfig.
func LoadConfig(ctx context.Context, kv jetstream.KeyValue) (contract.Config, error) {
	e, err := kv.Get(ctx, KeyConfig)
	if err != nil {
		return contract.Config{}, fmt.Errorf("read the config: %w", err)
	}
	return DecodeConfig(e.Value())
}

// PublishEngineEvent records one of the engine's own operations on
// de.evt.engine.<kind>, where the operations log picks it up.
func PublishEngineEvent(ctx context.Context, js jetstream.JetStream, kind, msg string) error {
	b, err := json.Marshal(contract.EngineEvent{V: contract.Version, Kind: kind, Time: time.Now().UTC(), Message: msg})
	if err != nil {
		return err
	}
	if _, err := js.Publish(ctx, subject.EngineEvent(kind), b); err != nil {
		return fmt.Errorf("publish engine event: %w", err)
	}
	return nil
}

// PublishAudit records one change in the audit trail.
func PublishAudit(ctx context.Context, js jetstream.JetStream, e contract.AuditEntry) error {
	e.V = contract.Version
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	id := rand.Text()
	subj := subject.Audit(e.Action)
	if _, err := js.Publish(ctx, subj, b, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("publish audit entry: %w", err)
	}
	awaitSourced(ctx, js, subj, id)
	return nil
}

// auditSourceWait bounds how long PublishAudit waits for DE_AUDIT to take
// an entry over from DE_EVENTS.
const auditSourceWait = 5 * time.Second

// awaitSourced waits until DE_AUDIT holds the entry published with msg id
// id on subj: it is sourced from DE_EVENTS a moment after the publish was
// acknowledged, and a client that reads the trail right after its change
// must find the change there. A later entry on the same subject may hide
// ours, and then the wait runs to its bound; the entry is stored either
// way, so a wait that ends early loses nothing.
func awaitSourced(ctx context.Context, js jetstream.JetStream, subj, id string) {
	ctx, cancel := context.WithTimeout(ctx, auditSourceWait)
	defer cancel()
	st, err := js.Stream(ctx, StreamAudit)
	if err != nil {
		return
	}
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		m, err := st.GetLastMsgForSubject(ctx, subj)
		if err == nil && m.Header.Get(jetstream.MsgIDHeader) == id {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
