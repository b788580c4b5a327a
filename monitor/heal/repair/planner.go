package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// DeploymentRunning asks the planner whether a deployment runs: the id of
// one that does, "" when none does, an error when the answer says neither
// (no answer, an error, one that does not decode).
func DeploymentRunning(ctx context.Context, nc *nats.Conn) (string, error) {
	rep, err := kit.Request(ctx, nc, subject.DeployList(), nil)
	if err != nil {
		return "", fmt.Errorf("the planner does not answer: %w", err)
	}
	if rep.Code != 200 {
		return "", fmt.Errorf("the planner answered %d: %s", rep.Code, replyError(rep, nil))
	}
	var list []contract.DeploymentSummary
	if err := json.Unmarshal(rep.Body, &list); err != nil {
		return "", fmt.Errorf("the planner's list of deployments does not decode: %w", err)
	}
	for _, d := range list {
		if d.State == contract.DeployRunning || d.State == contract.DeployPending {
			return d.ID, nil
		}
	}
	return "", nil
}

// waitDeployment waits for a deployment to end and returns its state.
func (r *Repairer) waitDeployment(ctx context.Context, id string) string {
	deadline := time.Now().Add(30 * time.Minute)
	for time.Now().Before(deadline) {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rep, err := kit.Request(gctx, r.nc, subject.DeployGet(), contract.DeployGet{ID: id})
		cancel()
		var d contract.Deployment
		if err == nil && rep.Code == 200 && json.Unmarshal(rep.Body, &d) == nil && contract.Final(d.State) {
			return d.State
		}
		select {
		case <-ctx.Done():
			return "unknown (the engine stopped)"
		case <-time.After(time.Second):
		}
	}
	return "unfinished after 30m"
}

func replyError(rep kit.Reply, err error) string {
	if err != nil {
		return err.Error()
	}
	var eb contract.ErrorBody
	if json.Unmarshal(rep.Body, &eb) == nil && eb.Error != "" {
		return eb.Error
	}
	return fmt.Sprintf("answer %d", rep.Code)
}
