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
