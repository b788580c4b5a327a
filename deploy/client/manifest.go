package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// CloudConfig returns the stored cloud config.
func (c *Client) CloudConfig(ctx context.Context) (contract.CloudConfig, json.RawMessage, error) {
	var out contract.CloudConfig
	raw, err := c.getJSON(ctx, "GET", base+"/cloud-config", nil, &out)
	return out, raw, err
}

// PutCloudConfig stores a cloud config given as YAML or JSON.
func (c *Client) PutCloudConfig(ctx context.Context, body []byte) (contract.CloudConfig, json.RawMessage, error) {
	var out contract.CloudConfig
	raw, err := c.getJSON(ctx, "PUT", base+"/cloud-config", body, &out)
	return out, raw, err
}

// DeployManifest deploys a BOSH manifest on the cloud config's machines;
// check false stores its config without contacting the nodes first.
func (c *Client) DeployManifest(ctx context.Context, in contract.ManifestDeploy, check bool) (contract.ManifestDeployed, json.RawMessage, error) {
	var out contract.ManifestDeployed
	body, err := json.Marshal(in)
	if err != nil {
		return out, nil, err
	}
	path := base + "/manifest"
	if !check {
		path += "?check=0"
	}
	raw, err := c.getJSON(ctx, "POST", path, body, &out)
	return out, raw, err
}

// ManifestVariables lists the variables the engine generated for the
// deployed manifest, never a value.
func (c *Client) ManifestVariables(ctx context.Context) (contract.ManifestVariables, json.RawMessage, error) {
	var out contract.ManifestVariables
	raw, err := c.getJSON(ctx, "GET", base+"/manifest/variables", nil, &out)
	return out, raw, err
}

// RegenerateVariable marks a generated variable, with the certificates
// it signs, to be generated anew at the next manifest deploy.
func (c *Client) RegenerateVariable(ctx context.Context, name string) (contract.ManifestRegenerated, json.RawMessage, error) {
	var out contract.ManifestRegenerated
	raw, err := c.getJSON(ctx, "POST", base+"/manifest/variables/"+url.PathEscape(name)+"/regenerate", nil, &out)
	return out, raw, err
}

// Instances lists the cluster's instances: group/index, zone, IP, state,
// each job's processes.
func (c *Client) Instances(ctx context.Context) ([]contract.Instance, json.RawMessage, error) {
	var out []contract.Instance
	raw, err := c.getJSON(ctx, "GET", base+"/instances", nil, &out)
	return out, raw, err
}
