package installer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodefs"
)

// A step whose files the installer sends itself (from this machine, or
// more than a chain script carries inline: see chainable) runs apart from
// any chain: the node's checks, each file's transfer and the script go in
// commands of their own, in the order a chain script keeps.

// runSent runs such a step once.
func (r *stepRun) runSent() outcome {
	r.started = time.Now().UTC()
	ctx, cancel := context.WithTimeout(r.ctx, stepTimeout(r.s)+time.Minute)
	defer cancel()
	state, code, err := r.sendAndRun(ctx)
	switch {
	case err != nil:
		return outcome{code: code, err: err}
	case !r.succeed(state):
		return outcome{lost: true}
	}
	return outcome{at: 1}
}

// sendAndRun returns the step's final state and exit code, or an error
// (permanent or not).
func (r *stepRun) sendAndRun(ctx context.Context) (string, int, error) {
	s := r.s
	cfg, c, err := r.i.connect(ctx, s.Node)
	if err != nil {
		return "", -1, err
	}
	_ = r.report(contract.StateRunning, nil, "", false)
	state, err := r.check(ctx, c)
	if err != nil {
		return "", -1, err
	}
	if state != "" {
		return state, 0, nil
	}
	for _, f := range s.Files {
		sent, err := r.i.upload(ctx, c, f)
		if err != nil {
			return "", -1, err
		}
		if sent {
			r.line("stdout", "sent "+f.Path)
		}
	}
	pre, err := r.prelude(ctx, cfg)
	if err != nil {
		return "", -1, err
	}
	red := cfg.OutputRedactor()
	timeout := stepTimeout(s)
	job := stepJob{key: nodefs.MarkerName(s.Key), hash: s.Hash, deployment: s.Deployment, until: time.Now().Add(timeout + 5*time.Second)}
	res := runStep(ctx, c, job, withPrelude(pre, s), timeout, func(stream, text string) { r.output(red, stream, text) })
	if code, err := r.exitError(res, r.cancelled.Load() != nil, red.Redact(r.tail.String())); err != nil {
		return "", code, err
	}
	return contract.StateSucceeded, 0, nil
}

// check readies the node for the step: no earlier run of it alive, and
// the node left for a claim's engine. It returns the step's final state
// when its marker says it is done.
func (r *stepRun) check(ctx context.Context, c nodeConn) (string, error) {
	s := r.s
	key, marker := nodefs.MarkerName(s.Key), nodefs.Marker(s.Key)
	// An earlier attempt of this step may still run on the node (its
	// installer died, or its message came back): never run two at once.
	note, err := settle(ctx, c, key, s.Hash)
	if err != nil {
		return "", fmt.Errorf("an earlier run of %s on %s: %w", s.Key, s.Node, err)
	}
	if note != "" {
		r.line("stdout", note)
	}
	have, err := output(ctx, c, nodefs.ForgetUnlessHolds(s.Key, s.Holds)+"cat "+marker+" 2>/dev/null || true", nil)
	if err != nil {
		return "", fmt.Errorf("read step marker on %s: %w", s.Node, err)
	}
	if f := strings.Fields(string(have)); len(f) >= 1 && f[0] == s.Hash {
		if len(f) >= 2 && f[1] == s.Deployment {
			// This deployment completed it before the engine stopped.
			return contract.StateSucceeded, nil
		}
		return contract.StateUnchanged, nil
	}
	if s.Claim {
		owner, _ := output(ctx, c, nodefs.ReadOwner, nil)
		if nodefs.OwnedElsewhere(string(owner), s.Engine) {
			return "", r.ownedBy(strings.TrimSpace(string(owner)))
		}
	}
	if len(s.Files) > 0 && strings.TrimSpace(string(have)) != "" {
		// The node is about to leave the state its marker records: a step
		// that fails from here on must not pass for the old one applied
		// (a revert to it would find nothing to do).
		if _, err := output(ctx, c, "rm -f "+marker, nil); err != nil {
			return "", fmt.Errorf("clear step marker on %s: %w", s.Node, err)
		}
	}
	return "", nil
}
