package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Disks lists the persistent disks, attached and orphaned (GET /disks).
func (c *Client) Disks(ctx context.Context) ([]contract.Disk, json.RawMessage, error) {
	var l []contract.Disk
	raw, err := c.getJSON(ctx, "GET", base+"/disks", nil, &l)
	return l, raw, err
}

// DeleteDisk deletes node ip's orphaned persistent disk (DELETE
// /disks/{ip}) and returns the deployment that deletes it.
func (c *Client) DeleteDisk(ctx context.Context, ip string) (contract.DiskDeleteStarted, json.RawMessage, error) {
	var s contract.DiskDeleteStarted
	raw, err := c.getJSON(ctx, "DELETE", base+"/disks/"+url.PathEscape(ip), nil, &s)
	return s, raw, err
}
