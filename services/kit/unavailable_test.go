package kit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{fmt.Errorf("read deployment x: %w", nats.ErrNoResponders), true},
		{fmt.Errorf("store: %w", jetstream.ErrNoStreamResponse), true},
		{fmt.Errorf("store: %w", nats.ErrNoStreamResponse), true},
		{fmt.Errorf("store: %w", context.DeadlineExceeded), true},
		{nats.ErrConnectionClosed, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{fmt.Errorf("x: %w", &jetstream.APIError{Code: 400, ErrorCode: 10003}), false},
		{jetstream.ErrKeyNotFound, false},
		{&kit.Error{Code: 404, Msg: "no"}, false},
	} {
		if got := kit.Unavailable(tc.err); got != tc.want {
			t.Errorf("Unavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A command whose store does not answer replies 503 with a message that
// says so, not 500.
func TestEndpointUnavailableIs503(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	svc, err := micro.AddService(b.NC, micro.Config{Name: "t", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	h := func(ctx context.Context, req micro.Request) (int, any, error) {
		return 0, nil, fmt.Errorf("read the config: %w", jetstream.ErrNoStreamResponse)
	}
	if err := svc.AddEndpoint("x", kit.Endpoint(slog.Default(), h), micro.WithEndpointSubject(subject.ConfigGet())); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := kit.Request(ctx, b.NC, subject.ConfigGet(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var body contract.ErrorBody
	_ = json.Unmarshal(rep.Body, &body)
	if rep.Code != 503 || body.Error != kit.UnavailableMsg {
		t.Errorf("reply %d %q, want 503 %q", rep.Code, body.Error, kit.UnavailableMsg)
	}
}
