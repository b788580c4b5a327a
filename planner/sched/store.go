package sched

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// Keys in DE_SCHEDULER. DE_DEPLOYMENTS holds the deployment records alone:
// one a deployment id, with the changes that follow it (records.go).
const (
	keyCurrent   = "current"   // id of the deployment that runs now
	keyPlacement = "placement" // node → components of the last deployment
	keyPartial   = "partial"   // node → components a deployment reached and never started
	keyLease     = "lock"      // the deploy lock: which scheduler drives the current deployment, until when
)

// stepsKey holds the rendered steps of deployment id, written once.
func stepsKey(id string) string { return "steps." + id }

type specDoc struct {
	Specs map[string]contract.Step `json:"specs"`
	Prios map[string]int           `json:"prios"`
	// Blobs hold once, by SHA-256, the content of a large file that steps
	// share (a copy's, one step a node), sealed as a step's file is: each
	// step's own is left empty, so that a file of 4 MiB to many nodes fits
	// one value of the bucket.
	Blobs map[string]contract.StepFile `json:"blobs,omitempty"`
}

// blobMin is the smallest file content kept in specDoc.Blobs.
const blobMin = 64 << 10

// blobStep is the step a blob is sealed in: its AAD binds the blob to its
// checksum, as a step's file is bound to its step and path.
func blobStep(sum string, content []byte) contract.Step {
	return contract.Step{ID: "blob", Files: []contract.StepFile{{Path: sum, Content: content, SHA256: sum}}}
}

// loadRecord reads deployment id (readRecord) and its steps.
func loadRecord(ctx context.Context, res *bus.Resources, id string) (*Record, error) {
	rec, err := readRecord(ctx, res, id)
	if err != nil {
		return nil, err
	}
	se, err := res.Scheduler.Get(ctx, stepsKey(id))
	if err != nil {
		return nil, fmt.Errorf("read steps of deployment %s: %w", id, err)
	}
	doc, err := decodeSpecs(se.Value())
	if err != nil {
		return nil, fmt.Errorf("decode steps of deployment %s: %w", id, err)
	}
	for id, sp := range doc.Specs {
		if sp.Component == steps.NodeComponent && sp.Action == "prepare" && !sp.Claim {
			// Stored before a step carried its claim: the node's first
			// step claims the node.
			sp.Claim = true
			doc.Specs[id] = sp
		}
	}
	rec.specs, rec.prios = doc.Specs, doc.Prios
	return rec, nil
}

// encodeSpecs is doc as the scheduler's bucket keeps it: its files' content
// sealed (bus.SealStep), a large content that steps share kept once.
func encodeSpecs(doc specDoc) ([]byte, error) {
	sealed := make(map[string]contract.Step, len(doc.Specs))
	shared := map[string][]byte{}
	for id, sp := range doc.Specs {
		sp.Files = slices.Clone(sp.Files)
		for i, f := range sp.Files {
			if len(f.Content) < blobMin || f.Sealed || f.SHA256 == "" {
				continue
			}
			if have, ok := shared[f.SHA256]; !ok {
				shared[f.SHA256] = f.Content
			} else if !bytes.Equal(have, f.Content) {
				continue // not the content its checksum names: kept as it is
			}
			sp.Files[i].Content = nil
		}
		sealed[id] = bus.SealStep(sp)
	}
	doc.Specs = sealed
	if len(shared) > 0 {
		doc.Blobs = make(map[string]contract.StepFile, len(shared))
		for sum, content := range shared {
			doc.Blobs[sum] = bus.SealStep(blobStep(sum, content)).Files[0]
		}
	}
	return json.Marshal(doc)
}

// decodeSpecs reads what encodeSpecs wrote, its files opened.
func decodeSpecs(b []byte) (specDoc, error) {
	var doc specDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return doc, err
	}
	blobs := make(map[string][]byte, len(doc.Blobs))
	for sum, f := range doc.Blobs {
		bs := contract.Step{ID: "blob", Files: []contract.StepFile{f}}
		if err := bus.OpenStep(&bs); err != nil || bs.Files[0].Path != sum {
			return doc, fmt.Errorf("shared file %s: %w", sum, cmp.Or(err, errors.New("stored under another checksum")))
		}
		blobs[sum] = bs.Files[0].Content
	}
	doc.Blobs = nil
	for id, sp := range doc.Specs {
		if err := bus.OpenStep(&sp); err != nil {
			return doc, err
		}
		for i, f := range sp.Files {
			if c, ok := blobs[f.SHA256]; ok && len(f.Content) == 0 && f.LocalPath == "" {
				sp.Files[i].Content = c
			}
		}
		doc.Specs[id] = sp
	}
	return doc, nil
}

// StoredSteps reads the rendered steps deployment id keeps, by step id.
func StoredSteps(ctx context.Context, res *bus.Resources, id string) (map[string]contract.Step, error) {
	e, err := res.Scheduler.Get(ctx, stepsKey(id))
	if err != nil {
		return nil, err
	}
	doc, err := decodeSpecs(e.Value())
	return doc.Specs, err
}

// storeSteps writes the rendered steps of rec, once: steps already stored
// under its id are another deployment's, and a conflict (bus.IsConflict).
func storeSteps(ctx context.Context, res *bus.Resources, rec *Record) error {
	doc, err := encodeSpecs(specDoc{Specs: rec.specs, Prios: rec.prios})
	if err != nil {
		return fmt.Errorf("encode steps: %w", err)
	}
	if _, err := res.Scheduler.Create(ctx, stepsKey(rec.ID), doc); err != nil {
		return fmt.Errorf("store steps of %s: %w", rec.ID, err)
	}
	return nil
}

// currentID is the id of the deployment that runs now; "" when none does.
func currentID(ctx context.Context, res *bus.Resources) (string, error) {
	id, _, err := currentMark(ctx, res)
	return id, err
}

// currentMark is currentID with the mark's revision (0 when none is set),
// for a write of the mark that another's made meanwhile refuses.
func currentMark(ctx context.Context, res *bus.Resources) (string, uint64, error) {
	e, err := res.Scheduler.Get(ctx, keyCurrent)
	if bus.IsNotFound(err) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("read current deployment: %w", err)
	}
	return string(e.Value()), e.Revision(), nil
}

// markCurrent names id the deployment that runs now, on the mark's
// revision as read: a mark another scheduler set meanwhile is a conflict,
// not overwritten.
func markCurrent(ctx context.Context, res *bus.Resources, id string) error {
	_, rev, err := currentMark(ctx, res)
	if err == nil {
		_, err = bus.PutAt(ctx, res.Scheduler, keyCurrent, []byte(id), rev)
	}
	if err != nil {
		return fmt.Errorf("mark %s current: %w", id, err)
	}
	return nil
}

// LoadPlacement reads which components run on which node. None stored is
// an empty placement; any other failure, to read or to decode it, is an
// error: a placement planned or updated from an empty one taken for it
// would forget instances, and written back would lose them for good.
func LoadPlacement(ctx context.Context, res *bus.Resources) (map[string][]string, error) {
	out, _, err := loadNodeMap(ctx, res, keyPlacement)
	return out, err
}

// LoadPartial reads the instances a deployment's steps reached on their
// node without starting them (a failed install, register or start): they
// hold files and maybe a monit check there, so a config that drops them
// has them removed. Read as LoadPlacement is.
func LoadPartial(ctx context.Context, res *bus.Resources) (map[string][]string, error) {
	out, _, err := loadNodeMap(ctx, res, keyPartial)
	return out, err
}

// loadNodeMap reads key's node → components with the revision it was read
// at (0: none stored), on which a map updated from it is written.
func loadNodeMap(ctx context.Context, res *bus.Resources, key string) (map[string][]string, uint64, error) {
	out := map[string][]string{}
	e, err := res.Scheduler.Get(ctx, key)
	if bus.IsNotFound(err) {
		return out, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read the %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), &out); err != nil {
		return nil, 0, fmt.Errorf("the stored %s (%s %s) does not decode: %w", key, bus.KVScheduler, key, err)
	}
	return out, e.Revision(), nil
}

// DeploymentIDs lists the ids of every stored deployment; the keys of
// their changes (<id>.<n>) are not ids.
func DeploymentIDs(ctx context.Context, res *bus.Resources) ([]string, error) {
	keys, err := res.Deployments.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	return slices.DeleteFunc(keys, func(k string) bool { return strings.Contains(k, ".") }), err
}

// WrittenSteps finds, among the rendered steps kept per deployment, the
// ones wanted (step id@hash, as the nodes' markers name them), newest
// deployment first, and the ids of the deployments they came from.
func WrittenSteps(ctx context.Context, res *bus.Resources, wanted map[string]bool) (map[string]contract.Step, []string, error) {
	out := map[string]contract.Step{}
	if len(wanted) == 0 {
		return out, nil, nil
	}
	keys, err := DeploymentIDs(ctx, res)
	if err != nil {
		return nil, nil, fmt.Errorf("list deployments: %w", err)
	}
	ids := slices.DeleteFunc(keys, func(k string) bool { return !strings.HasPrefix(k, "d-") })
	slices.Sort(ids)
	slices.Reverse(ids)
	var from []string
	for _, id := range ids {
		if len(out) == len(wanted) {
			break
		}
		specs, err := StoredSteps(ctx, res, id)
		if err != nil {
			continue
		}
		used := false
		for sid, s := range specs {
			key := sid + "@" + s.Hash
			if _, done := out[key]; wanted[key] && !done {
				out[key], used = s, true
			}
		}
		if used {
			from = append(from, id)
		}
	}
	return out, from, nil
}

// legacySpecs ends the key under which a store written before DE_SCHEDULER
// kept a deployment's steps in DE_DEPLOYMENTS.
const legacySpecs = "-specs"

// migrateBookkeeping moves the scheduler's keys that an older engine kept
// in DE_DEPLOYMENTS beside the records (current, placement, lock and
// <id>-specs) to DE_SCHEDULER. Each is written there before it is deleted
// here, so an engine stopped halfway moves the rest at its next start; a
// key found here is the older layout's latest word and replaces its copy.
func migrateBookkeeping(ctx context.Context, res *bus.Resources, log *slog.Logger) error {
	keys, err := DeploymentIDs(ctx, res)
	if err != nil {
		return fmt.Errorf("planner: list deployments: %w", err)
	}
	for _, k := range keys {
		to := k
		switch {
		case k == keyCurrent || k == keyPlacement || k == keyLease:
		case strings.HasSuffix(k, legacySpecs):
			to = stepsKey(strings.TrimSuffix(k, legacySpecs))
		default:
			continue
		}
		e, err := res.Deployments.Get(ctx, k)
		if bus.IsNotFound(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("planner: read %s: %w", k, err)
		}
		if _, err := res.Scheduler.Put(ctx, to, e.Value()); err != nil {
			return fmt.Errorf("planner: move %s to %s: %w", k, bus.KVScheduler, err)
		}
		if err := res.Deployments.Delete(ctx, k); err != nil {
			return fmt.Errorf("planner: move %s to %s: %w", k, bus.KVScheduler, err)
		}
		log.Info("moved the scheduler's key out of the deployments", "from", k, "to", to)
	}
	return nil
}
