package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Copy puts a file on nodes (POST /copy): x names a component or nodes,
// the path, the content and its mode (its V and Actor are the engine's to
// set); or, with From, reads a file back from them (CopiedFile). It
// returns the deployment that runs it.
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

// CopiedFile returns the file a copy from the nodes read back from node ip
// (GET /deployments/{id}/files/{ip}), as the node had it: at most
// contract.MaxCopyBytes, a longer answer is an error.
func (c *Client) CopiedFile(ctx context.Context, id, ip string) ([]byte, error) {
	path := base + "/deployments/" + url.PathEscape(id) + "/files/" + url.PathEscape(ip)
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, contract.MaxCopyBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("GET %s: read answer: %w", path, err)
	case len(b) > contract.MaxCopyBytes:
		return nil, fmt.Errorf("GET %s: more than %d bytes (4 MiB)", path, contract.MaxCopyBytes)
	}
	return b, nil
}
