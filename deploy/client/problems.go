package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Problems scans the cluster: every problem found, with its fixes.
func (c *Client) Problems(ctx context.Context) (contract.ProblemList, json.RawMessage, error) {
	var out contract.ProblemList
	raw, err := c.getJSON(ctx, "GET", base+"/problems", nil, &out)
	return out, raw, err
}

// Resolve applies fix to problem id and returns the deployment's id.
func (c *Client) Resolve(ctx context.Context, id, fix string) (string, json.RawMessage, error) {
	body, err := json.Marshal(map[string]string{"fix": fix})
	if err != nil {
		return "", nil, err
	}
	var s contract.DeployStarted
	raw, err := c.getJSON(ctx, "POST", base+"/problems/"+url.PathEscape(id)+"/resolve", body, &s)
	return s.ID, raw, err
}
