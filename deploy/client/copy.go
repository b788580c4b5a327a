package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

// Copy puts a file on nodes (POST /copy): x names a component or nodes,
// the path, the content and its mode (its V and Actor are the engine's to
// set). It returns the deployment that runs it.
func (c *Client) Copy(ctx context.Context, x contract.FleetCopy) (contract.FleetCopyStarted, json.RawMessage, error) {
	x.V, x.Actor = 0, ""
	body, err := json.Marshal(x)
	if err != nil {
		return contract.FleetCopyStarted{}, nil, fmt.Errorf("encode copy: %w", err)
	}
	var s contract.FleetCopyStarted
	raw, err := c.getJSON(ctx, "POST", base+"/copy", body, &s)
	return s, raw, err
}
