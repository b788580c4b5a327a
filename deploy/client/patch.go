package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

// Patch starts the rolling upgrade of the nodes' packages from the
// engine's mirror (POST /patch): its deployment and the nodes it patches.
func (c *Client) Patch(ctx context.Context, x contract.Patch) (contract.PatchStarted, json.RawMessage, error) {
	x.V, x.Actor = 0, ""
	body, err := json.Marshal(x)
	if err != nil {
		return contract.PatchStarted{}, nil, fmt.Errorf("encode patch: %w", err)
	}
	var s contract.PatchStarted
	raw, err := c.getJSON(ctx, "POST", base+"/patch", body, &s)
	return s, raw, err
}
