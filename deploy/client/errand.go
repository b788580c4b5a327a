package client

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/deployment-engine/engine/services/contract"
)

// Errands lists the config's errands (GET /errands).
func (c *Client) Errands(ctx context.Context) (contract.ErrandList, json.RawMessage, error) {
	var l contract.ErrandList
	raw, err := c.getJSON(ctx, "GET", base+"/errands", nil, &l)
	return l, raw, err
}

// RunErrand runs errand name on its instances (POST
// /errands/{name}/run): with whenChanged, an instance whose inputs did not
// change since its last successful run is skipped; timeout, when not 0,
// bounds each run in seconds. It returns the deployment that runs it.
func (c *Client) RunErrand(ctx context.Context, name string, whenChanged bool, timeout int) (contract.ErrandStarted, json.RawMessage, error) {
	q := url.Values{}
	if whenChanged {
		q.Set("when_changed", "1")
	}
	if timeout != 0 {
		q.Set("timeout", strconv.Itoa(timeout))
	}
	path := base + "/errands/" + url.PathEscape(name) + "/run"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var s contract.ErrandStarted
	raw, err := c.getJSON(ctx, "POST", path, nil, &s)
	return s, raw, err
}
