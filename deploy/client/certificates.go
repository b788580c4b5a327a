package client

import (
	"context"
	"encoding/json"
	"net/url"

	"github.com/deployment-engine/engine/services/contract"
)

// Certificates lists every certificate the engine made or serves, with
// the seconds each has left.
func (c *Client) Certificates(ctx context.Context) (contract.Certificates, json.RawMessage, error) {
	var out contract.Certificates
	raw, err := c.getJSON(ctx, "GET", base+"/certificates", nil, &out)
	return out, raw, err
}

// RotateCertificate asks the engine to issue certificate name again (api,
// agents-listener), or to move the agents to a new CA (agents-ca); the
// process holding it serves the new one from its next handshake.
func (c *Client) RotateCertificate(ctx context.Context, name string) (contract.CertificateRotated, json.RawMessage, error) {
	var out contract.CertificateRotated
	raw, err := c.getJSON(ctx, "POST", base+"/certificates/"+url.PathEscape(name)+"/rotate", nil, &out)
	return out, raw, err
}
