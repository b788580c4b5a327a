package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/deployment-engine/engine/services/contract"
)

// ErrStreamCut is the engine's end of a log stream whose client fell too
// far behind: follow again.
var ErrStreamCut = errors.New("the engine cut the stream: the client fell too far behind")

// FollowLogs calls fn with each runtime log line of component (on ip
// alone when ip is set), the last tail lines of each instance first, until
// ctx ends (nil then), fn fails, or the engine ends the stream: a cut
// (ErrStreamCut) or a token revoked.
func (c *Client) FollowLogs(ctx context.Context, component, ip string, tail int, fn func(contract.FollowLine) error) error {
	q := url.Values{"component": {component}}
	if ip != "" {
		q.Set("ip", ip)
	}
	if tail > 0 {
		q.Set("tail", strconv.Itoa(tail))
	}
	resp, err := c.do(ctx, "GET", base+"/logs/follow?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = ReadSSE(resp.Body, func(kind string, data []byte) error {
		switch kind {
		case "line":
			var l contract.FollowLine
			if err := json.Unmarshal(data, &l); err != nil {
				return fmt.Errorf("decode line event: %w", err)
			}
			if err := fn(l); err != nil {
				return callbackError{err}
			}
		case "cut":
			var e contract.ErrorBody
			_ = json.Unmarshal(data, &e)
			return fmt.Errorf("%w: %s", ErrStreamCut, e.Error)
		}
		return nil
	})
	var cbErr callbackError
	switch {
	case errors.As(err, &cbErr):
		return cbErr.err
	case ctx.Err() != nil:
		return nil
	case err == nil || errors.Is(err, io.EOF):
		return errors.New("the engine ended the stream (the API token was revoked, or the engine stopped)")
	}
	return err
}
