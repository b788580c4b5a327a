package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// Release is a stored BOSH release as the engine lists it.
type Release struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Jobs     []string `json:"jobs"`
	Packages []string `json:"packages"`
}

// UploadRelease streams a release tarball of size bytes to the engine.
// created is false when the engine already had it.
func (c *Client) UploadRelease(ctx context.Context, r io.Reader, size int64) (rel Release, created bool, raw json.RawMessage, err error) {
	resp, err := c.send(ctx, "POST", base+"/releases", r, "application/gzip", size)
	if err != nil {
		return rel, false, nil, err
	}
	defer resp.Body.Close()
	raw, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return rel, false, nil, fmt.Errorf("POST %s/releases: read answer: %w", base, err)
	}
	if err := json.Unmarshal(raw, &rel); err != nil {
		return rel, false, raw, fmt.Errorf("POST %s/releases: decode answer: %w", base, err)
	}
	return rel, resp.StatusCode == 201, raw, nil
}

// Releases lists the stored releases.
func (c *Client) Releases(ctx context.Context) ([]Release, json.RawMessage, error) {
	var out []Release
	raw, err := c.getJSON(ctx, "GET", base+"/releases", nil, &out)
	return out, raw, err
}
