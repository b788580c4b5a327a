package client

import (
	"context"
	"encoding/json"

	"github.com/deployment-engine/engine/services/contract"
)

// Certificates lists every certificate the engine made or serves, with
// the seconds each has left.
func (c *Client) Certificates(ctx context.Context) (contract.Certificates, json.RawMessage, error) {
	var out contract.Certificates
	raw, err := c.getJSON(ctx, "GET", base+"/certificates", nil, &out)
	return out, raw, err
}
