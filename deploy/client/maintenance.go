package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Maintenance lists the nodes in maintenance.
func (c *Client) Maintenance(ctx context.Context) ([]contract.NodeMaintenance, json.RawMessage, error) {
	var out []contract.NodeMaintenance
	raw, err := c.getJSON(ctx, "GET", base+"/maintenance", nil, &out)
	return out, raw, err
}

// NodeMaintenance says whether the node at ip is in maintenance.
func (c *Client) NodeMaintenance(ctx context.Context, ip string) (contract.NodeMaintenance, json.RawMessage, error) {
	var out contract.NodeMaintenance
	raw, err := c.getJSON(ctx, "GET", base+"/nodes/"+url.PathEscape(ip)+"/maintenance", nil, &out)
	return out, raw, err
}

// SetMaintenance puts the node at ip in maintenance (on, with reason) or
// takes it out.
func (c *Client) SetMaintenance(ctx context.Context, ip string, on bool, reason string) (contract.NodeMaintenance, json.RawMessage, error) {
	body, err := json.Marshal(map[string]any{"on": on, "reason": reason})
	if err != nil {
		return contract.NodeMaintenance{}, nil, err
	}
	var out contract.NodeMaintenance
	raw, err := c.getJSON(ctx, "PUT", base+"/nodes/"+url.PathEscape(ip)+"/maintenance", body, &out)
	return out, raw, err
}
