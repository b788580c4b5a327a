package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Plan asks what a deployment of cfg (nil: the stored config) would do.
func (c *Client) Plan(ctx context.Context, cfg []byte) (contract.Plan, json.RawMessage, error) {
	var p contract.Plan
	raw, err := c.getJSON(ctx, "POST", base+"/plan", cfg, &p)
	return p, raw, err
}

// DeployPlan starts a deployment that must still match plan id: the engine
// answers 409 when the config, catalog or nodes changed since.
func (c *Client) DeployPlan(ctx context.Context, plan string) (string, json.RawMessage, error) {
	var s contract.DeployStarted
	raw, err := c.getJSON(ctx, "POST", base+"/deploy?plan="+url.QueryEscape(plan), nil, &s)
	return s.ID, raw, err
}

// Rollback deploys the last config whose deployment succeeded again.
func (c *Client) Rollback(ctx context.Context) (string, json.RawMessage, error) {
	var s contract.DeployStarted
	raw, err := c.getJSON(ctx, "POST", base+"/rollback", nil, &s)
	return s.ID, raw, err
}

// RollingRestart restarts comp's instances on ip ("0.0.0.0": every one)
// maxInFlight at a time, and returns the deployment's id.
func (c *Client) RollingRestart(ctx context.Context, comp, ip, maxInFlight string) (string, json.RawMessage, error) {
	body, err := json.Marshal(map[string]string{"name": comp, "ip": ip, "max_in_flight": maxInFlight})
	if err != nil {
		return "", nil, err
	}
	var s contract.DeployStarted
	raw, err := c.getJSON(ctx, "PUT", base+"/restart", body, &s)
	return s.ID, raw, err
}
