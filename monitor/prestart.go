package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// preStarts knows the instances whose last pre-start failed.
//
// A BOSH job's pre-start prepares what its processes, or a job with none
// its configuration, need; register and start run only after it passed.
// The node's agent cannot see the outcome: it reports what monit runs, and
// a job without processes as configured from the moment its agent config
// names it. The step's own outcome, as the installer reported it on
// de.evt.deploy.<id>.step, is the narrowest truthful source: it names the
// node, the component and the reason, and the event stream keeps it across
// the engine's restarts (for the stream's max age, 7 days). A pre-start
// that failed makes its instance DOWN with that reason until a later one
// of it succeeds.
type preStarts struct {
	mu     sync.RWMutex
	failed map[string]string // component@ip → why
	cc     jetstream.ConsumeContext
}

// follow replays and then follows the step events of every deployment.
func (p *preStarts) follow(ctx context.Context, events jetstream.Stream, log func(msg string, args ...any)) error {
	p.failed = map[string]string{}
	cons, err := events.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{subject.AllDeploySteps}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return fmt.Errorf("follow the steps' outcomes: %w", err)
	}
	p.cc, err = cons.Consume(func(msg jetstream.Msg) {
		var ev contract.StepEvent
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			log("unreadable step event", "subject", msg.Subject(), "err", err)
			return
		}
		p.take(ev)
	})
	if err != nil {
		return fmt.Errorf("follow the steps' outcomes: %w", err)
	}
	return nil
}

// take records one step's outcome.
func (p *preStarts) take(ev contract.StepEvent) {
	if ev.Action != "pre-start" {
		return
	}
	k := ev.Component + "@" + ev.Node
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.State {
	case contract.StateFailed:
		why := ev.Error
		if why == "" && ev.ExitCode != nil {
			why = fmt.Sprintf("exit %d", *ev.ExitCode)
		}
		p.failed[k] = fmt.Sprintf("pre-start failed (deployment %s): %s", ev.Deployment, why)
	case contract.StateSucceeded, contract.StateUnchanged:
		delete(p.failed, k)
	}
}

// snapshot copies what failed, or nil when nothing did.
func (p *preStarts) snapshot() map[string]string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.failed) == 0 {
		return nil
	}
	out := make(map[string]string, len(p.failed))
	for k, v := range p.failed {
		out[k] = v
	}
	return out
}

func (p *preStarts) stop() {
	if p.cc != nil {
		p.cc.Stop()
	}
}
