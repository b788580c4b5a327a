package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/deployment-engine/engine/services/contract"
)

// Exec runs a command on nodes (POST /exec): x names a component or
// nodes, the command and how it runs (its V and Actor are the engine's
// to set). It returns the deployment that runs it.
func (c *Client) Exec(ctx context.Context, x contract.FleetExec) (contract.FleetExecStarted, json.RawMessage, error) {
	x.V, x.Actor = 0, ""
	body, err := json.Marshal(x)
	if err != nil {
		return contract.FleetExecStarted{}, nil, fmt.Errorf("encode exec: %w", err)
	}
	var s contract.FleetExecStarted
	raw, err := c.getJSON(ctx, "POST", base+"/exec", body, &s)
	return s, raw, err
}
