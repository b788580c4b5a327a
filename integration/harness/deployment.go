package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

// Deploy starts a deployment with GET /deployment-engine/deploy, the
// contract's own route (the typed client posts), and answers its id; any
// answer but 202 with an id fails the test.
func Deploy(t testing.TB, e *Engine) string {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/deploy", nil)
	if code != 202 {
		t.Fatalf("deploy: %d %s", code, body)
	}
	var r contract.DeployStarted
	if err := json.Unmarshal(body, &r); err != nil || r.ID == "" {
		t.Fatalf("deploy reply %s", body)
	}
	return r.ID
}

// DeployWhenAccepted starts a deployment through the typed client, asking
// again every every until the engine accepts it (a service it needs may
// still be coming back), and answers its id. It logs each refusal with how
// long it took. A 504 may still have started the deployment, so before
// asking again it looks, as the 504 says to: a deployment created since
// the ask is the one asked for. After within it answers the last error.
func DeployWhenAccepted(t testing.TB, e *Engine, within, every time.Duration) (string, error) {
	t.Helper()
	c := e.Client()
	for deadline := time.Now().Add(within); ; time.Sleep(every) {
		asked := time.Now()
		id, raw, err := c.Deploy(context.Background())
		if err == nil && id == "" {
			return "", fmt.Errorf("deploy answered no id: %s", raw)
		}
		if err == nil {
			return id, nil
		}
		t.Logf("deploy not accepted after %s: %.300v", time.Since(asked).Round(100*time.Millisecond), err)
		var api *client.APIError
		if errors.As(err, &api) && api.Status == 504 {
			if id, ok := startedSince(e, asked); ok {
				t.Logf("deploy: the 504 did start deployment %s", id)
				return id, nil
			}
		}
		if time.Now().After(deadline) {
			return "", err
		}
	}
}

// startedSince is the newest deployment of kind deploy created at or
// after since (less a second: the engine's clock rounds), if one was.
func startedSince(e *Engine, since time.Time) (string, bool) {
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		code, body, err := e.DoErr(ctx, "GET", "/deployment-engine/deployments", nil)
		cancel()
		var list []contract.DeploymentSummary
		if err == nil && code == 200 && json.Unmarshal(body, &list) == nil {
			for _, d := range list {
				if d.Kind == "" && !d.Created.Before(since.Add(-time.Second)) {
					return d.ID, true
				}
			}
			return "", false
		}
		time.Sleep(time.Second)
	}
	return "", false
}

// Ended tells whether a deployment has ended, either way.
func Ended(d contract.Deployment) bool {
	return d.State == contract.DeploySucceeded || d.State == contract.DeployFailed
}

// readTimeout bounds one read of a deployment: a read the engine holds
// longer is given up and tried again.
const readTimeout = 20 * time.Second

// Wait reads deployment id every every until it has ended or ctx ends. It
// answers the deployment as last read and, when it has not ended, why: the
// last read's error, or ctx's.
func Wait(ctx context.Context, c *client.Client, id string, every time.Duration) (contract.Deployment, error) {
	var last contract.Deployment
	for {
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		d, _, err := c.Deployment(rctx, id)
		cancel()
		if err == nil {
			if Ended(d) {
				return d, nil
			}
			last = d
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return last, fmt.Errorf("deployment %s has not ended: %w", id, err)
		case <-time.After(every):
		}
	}
}

// Failures is a deployment's error and, a line each, the steps that
// neither succeeded nor were unchanged.
func Failures(d contract.Deployment) string {
	out := []string{d.Error}
	for _, s := range d.Steps {
		if s.State != contract.StateSucceeded && s.State != contract.StateUnchanged {
			out = append(out, s.ID+" "+s.State+": "+s.Error)
		}
	}
	return strings.Join(out, "\n")
}
