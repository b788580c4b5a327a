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
