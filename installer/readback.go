package installer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
)

// A copy from the nodes (Step.ReadBack) runs apart from any chain and
// without the prelude of a step: a read changes nothing on the node, so it
// has no marker and is simply done again when its message comes back. Its
// script (contract.CopyRead) prints the file whole, which never goes into
// the step's log lines nor its output: the installer checks it against the
// SHA-256 and size the node computed and keeps it in the copies store
// (bus.ObjCopies), and the step's output is that SHA-256 and size.

// runRead runs such a step once.
func (r *stepRun) runRead() outcome {
	r.started = time.Now().UTC()
	ctx, cancel := context.WithTimeout(r.ctx, stepTimeout(r.s))
	defer cancel()
	if err := r.readBack(ctx); err != nil {
		switch {
		case r.cancelled.Load() != nil:
			return outcome{code: -1, err: errCancelled}
		case errors.Is(err, context.DeadlineExceeded):
			return outcome{code: -1, err: permanent{fmt.Errorf("timed out after %s reading %s", stepTimeout(r.s), r.s.ReadBack)}}
		}
		return outcome{code: -1, err: err}
	}
	if !r.succeed(contract.StateSucceeded) {
		return outcome{lost: true}
	}
	return outcome{at: 1}
}

// readBack reads the step's file from its node and stores it.
func (r *stepRun) readBack(ctx context.Context) error {
	s := r.s
	if why := contract.CopyPathProblem(s.ReadBack); why != "" {
		return permanent{fmt.Errorf("the file to read back: %s", why)}
	}
	cfg, c, err := r.i.connect(ctx, s.Node)
	if err != nil {
		return err
	}
	_ = r.report(contract.StateRunning, nil, "", false)
	out, err := output(ctx, c, "bash -s", strings.NewReader(contract.CopyRead(s.ReadBack)))
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			// The node answered: no such file, or one too big.
			return permanent{fmt.Errorf("read %s on %s: %w", s.ReadBack, s.Node, err)}
		}
		return fmt.Errorf("read %s on %s: %w", s.ReadBack, s.Node, err)
	}
	content, sum, err := contract.ParseCopyRead(out)
	if err != nil {
		return fmt.Errorf("read %s on %s: %w", s.ReadBack, s.Node, err)
	}
	store := r.i.o.Res.Copies
	if store == nil {
		return permanent{errors.New("the bus has no copies store")}
	}
	if _, err := store.PutBytes(ctx, bus.CopyObject(s.Deployment, s.Node), content); err != nil {
		return fmt.Errorf("keep the file read from %s: %w", s.Node, err)
	}
	r.kept.add(sum + " " + strconv.Itoa(len(content)))
	r.line("stdout", cfg.OutputRedactor().Redact(fmt.Sprintf("read %s: %d bytes, sha256 %s", s.ReadBack, len(content), sum)))
	return nil
}
