package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Report returns a deployment's timings.
func (c *Client) Report(ctx context.Context, id string) (contract.Report, json.RawMessage, error) {
	var r contract.Report
	raw, err := c.getJSON(ctx, "GET", base+"/deployments/"+url.PathEscape(id)+"/report", nil, &r)
	return r, raw, err
}

// Audit returns the audit trail; query may hold since, actor and action.
func (c *Client) Audit(ctx context.Context, query url.Values) ([]contract.AuditEntry, json.RawMessage, error) {
	var out []contract.AuditEntry
	path := base + "/audit"
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	raw, err := c.getJSON(ctx, "GET", path, nil, &out)
	return out, raw, err
}

// Heal returns auto-heal's state.
func (c *Client) Heal(ctx context.Context) (contract.HealState, json.RawMessage, error) {
	var s contract.HealState
	raw, err := c.getJSON(ctx, "GET", base+"/heal", nil, &s)
	return s, raw, err
}

// SetHeal switches auto-heal on or off.
func (c *Client) SetHeal(ctx context.Context, on bool) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]bool{"enabled": on})
	return c.getJSON(ctx, "PUT", base+"/heal", body, nil)
}
