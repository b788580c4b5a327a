package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Clusters lists the engine's clusters the token reaches.
func (c *Client) Clusters(ctx context.Context) ([]contract.Cluster, json.RawMessage, error) {
	var out []contract.Cluster
	raw, err := c.getJSON(ctx, "GET", base+"/clusters", nil, &out)
	return out, raw, err
}

// CreateCluster makes a named cluster.
func (c *Client) CreateCluster(ctx context.Context, name string) (contract.Cluster, json.RawMessage, error) {
	body, err := json.Marshal(contract.ClusterCreate{Name: name})
	if err != nil {
		return contract.Cluster{}, nil, err
	}
	var out contract.Cluster
	raw, err := c.getJSON(ctx, "POST", base+"/clusters", body, &out)
	return out, raw, err
}

// ClusterNamed is one cluster.
func (c *Client) ClusterNamed(ctx context.Context, name string) (contract.Cluster, json.RawMessage, error) {
	var out contract.Cluster
	raw, err := c.getJSON(ctx, "GET", base+"/clusters/"+url.PathEscape(name), nil, &out)
	return out, raw, err
}

// DeleteCluster starts a named cluster's delete: the deployment that
// takes it off its nodes ("" when it placed nothing and is gone).
func (c *Client) DeleteCluster(ctx context.Context, name string) (string, json.RawMessage, error) {
	var out contract.ClusterDeleted
	raw, err := c.getJSON(ctx, "DELETE", base+"/clusters/"+url.PathEscape(name), nil, &out)
	return out.ID, raw, err
}
