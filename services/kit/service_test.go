package kit_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// A served service answers each subject with its handler, runs its Go
// work until Stop, and once stopped answers nothing and runs no more work.
func TestServiceServesUntilStop(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	s := kit.NewService(slog.New(slog.NewTextHandler(io.Discard, nil)), "t")
	status, hardware := subject.MonitorStatus(), subject.MonitorHardware()
	err := s.Serve(b.NC, "a test", map[string]kit.Handler{
		status:   func(context.Context, micro.Request) (int, any, error) { return 200, "status", nil },
		hardware: func(context.Context, micro.Request) (int, any, error) { return 201, "hardware", nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	for subj, want := range map[string]kit.Reply{status: {Code: 200, Body: []byte(`"status"`)}, hardware: {Code: 201, Body: []byte(`"hardware"`)}} {
		rep, err := kit.Request(context.Background(), b.NC, subj, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Code != want.Code || string(rep.Body) != string(want.Body) {
			t.Errorf("%s: got %d %s, want %d %s", subj, rep.Code, rep.Body, want.Code, want.Body)
		}
	}
	ended := make(chan struct{})
	if !s.Go(func(ctx context.Context) { <-ctx.Done(); close(ended) }) {
		t.Fatal("Go ran nothing before Stop")
	}
	s.Stop(time.Second)
	select {
	case <-ended:
	default:
		t.Error("Stop returned before the work it ended")
	}
	if _, err := kit.Request(context.Background(), b.NC, status, nil); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("after Stop: err %v, want no responders", err)
	}
	if s.Go(func(context.Context) {}) {
		t.Error("Go ran work after Stop")
	}
	s.Stop(time.Second) // a second Stop finds nothing to wait for
}

// Default fills what is unset or below zero and keeps the rest.
func TestDefault(t *testing.T) {
	n, neg, set := 0, -1, 5
	kit.Default(&n, 3)
	kit.Default(&neg, 3)
	kit.Default(&set, 3)
	d, port, given := time.Duration(0), "", "2222"
	kit.Default(&d, time.Second)
	kit.Default(&port, "22")
	kit.Default(&given, "22")
	if n != 3 || neg != 3 || set != 5 || d != time.Second || port != "22" || given != "2222" {
		t.Errorf("got %d %d %d %v %q %q, want 3 3 5 1s \"22\" \"2222\"", n, neg, set, d, port, given)
	}
}
