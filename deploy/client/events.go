package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// Event is one server-sent event of a deployment's stream. Kind is
// "deployment" (Summary set: the deployment's summary when the stream
// opened), "started" or "finished" (Run set), "step" (Step set) or "log"
// (Log set); Data is the event's JSON as sent.
type Event struct {
	Kind    string
	Data    json.RawMessage
	Summary *contract.DeploymentPage
	Run     *contract.DeploymentEvent
	Step    *contract.StepEvent
	Log     *contract.LogLine
}

// Follow reads deployment id's event stream and hands every event to fn
// until the deployment finishes, then returns the deployment's summary as
// the engine last reports it (its steps: AllSteps). A stream that ends before "finished" is reopened (the
// engine replays it from the start; log lines already handed over are not
// handed over again). An error from fn stops Follow and is returned.
func (c *Client) Follow(ctx context.Context, id string, fn func(Event) error) (contract.DeploymentPage, error) {
	seen := map[string]bool{}
	failures := 0
	for {
		finished, err := c.stream(ctx, id, func(ev Event) error {
			if ev.Log != nil {
				k := logKey(ev.Log)
				if seen[k] {
					return nil
				}
				seen[k] = true
			}
			return fn(ev)
		})
		var cbErr callbackError
		if errors.As(err, &cbErr) {
			return contract.DeploymentPage{}, cbErr.err
		}
		if err != nil {
			var ae *APIError
			if errors.As(err, &ae) || ctx.Err() != nil {
				return contract.DeploymentPage{}, err
			}
			failures++
			if failures > 5 {
				return contract.DeploymentPage{}, fmt.Errorf("follow deployment %s: %w", id, err)
			}
		} else {
			failures = 0
		}
		d, _, gerr := c.Summary(ctx, id)
		if gerr != nil {
			if err != nil {
				return contract.DeploymentPage{}, fmt.Errorf("follow deployment %s: %w (then: %w)", id, err, gerr)
			}
			return contract.DeploymentPage{}, gerr
		}
		if finished || contract.Final(d.State) {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(retryDelay):
		}
	}
}

func logKey(l *contract.LogLine) string {
	return l.Step + "\x00" + l.Node + "\x00" + l.Component + "\x00" + l.Stream + "\x00" + strconv.FormatInt(l.Seq, 10) + "\x00" + l.Time.String()
}

type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// stream reads one connection of the event stream; finished says whether
// the "finished" event arrived.
func (c *Client) stream(ctx context.Context, id string, fn func(Event) error) (finished bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := c.do(ctx, "GET", base+"/deployments/"+url.PathEscape(id)+"/events?steps=0", nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	err = ReadSSE(resp.Body, func(kind string, data []byte) error {
		ev, derr := decodeEvent(kind, data)
		if derr != nil {
			return derr
		}
		if err := fn(ev); err != nil {
			return callbackError{err}
		}
		if kind == "finished" {
			finished = true
			return io.EOF
		}
		return nil
	})
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return finished, err
}

func decodeEvent(kind string, data []byte) (Event, error) {
	ev := Event{Kind: kind, Data: json.RawMessage(data)}
	var target any
	switch kind {
	case "deployment":
		ev.Summary = &contract.DeploymentPage{}
		target = ev.Summary
	case "started", "finished":
		ev.Run = &contract.DeploymentEvent{}
		target = ev.Run
	case "step":
		ev.Step = &contract.StepEvent{}
		target = ev.Step
	case "log":
		ev.Log = &contract.LogLine{}
		target = ev.Log
	default:
		return ev, nil
	}
	if err := json.Unmarshal(data, target); err != nil {
		return ev, fmt.Errorf("decode %s event: %w", kind, err)
	}
	return ev, nil
}

// ReadSSE parses a text/event-stream from r and calls fn for every event
// with its type ("message" when none is named) and data. Comments and
// empty events are skipped. It returns fn's first error, or nil at the end
// of r.
func ReadSSE(r io.Reader, fn func(kind string, data []byte) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	var kind string
	var data []string
	hasData := false
	dispatch := func() error {
		defer func() { kind, data, hasData = "", nil, false }()
		if !hasData {
			return nil
		}
		k := kind
		if k == "" {
			k = "message"
		}
		return fn(k, []byte(strings.Join(data, "\n")))
	}
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if err := dispatch(); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			kind = value
		case "data":
			data = append(data, value)
			hasData = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read event stream: %w", err)
	}
	return dispatch()
}
