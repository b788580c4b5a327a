package kit_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// A handler works no longer than its requester waits, and one that waits
// for a node that never answers holds up no other request to the same
// endpoint.
func TestHandlerBoundedByItsRequester(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	svc, err := micro.AddService(b.NC, micro.Config{Name: "t", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	type seen struct {
		left  time.Duration // the handler's time when it started
		ended time.Duration // how long until its ctx ended
		id    string
	}
	seenCh := make(chan seen, 4)
	h := func(ctx context.Context, req micro.Request) (int, any, error) {
		d, ok := ctx.Deadline()
		if !ok {
			t.Error("a handler without a deadline")
		}
		s := seen{left: time.Until(d), id: kit.RequestID(ctx)}
		if string(req.Data()) == `"hang"` {
			t0 := time.Now()
			<-ctx.Done() // a node that never answers
			s.ended = time.Since(t0)
		}
		seenCh <- s
		return 200, "ok", nil
	}
	subj := subject.MonitorStatus()
	if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Concurrent(8, kit.Endpoint(slog.New(slog.NewTextHandler(io.Discard, nil)), h)), micro.WithEndpointSubject(subj)); err != nil {
		t.Fatal(err)
	}

	hang, cancel := context.WithTimeout(kit.WithRequestID(context.Background(), "r-1"), 800*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := kit.Request(hang, b.NC, subj, "hang")
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	t0 := time.Now()
	rep, err := kit.Request(ctx, b.NC, subj, "quick")
	if err != nil || rep.Code != 200 {
		t.Fatalf("quick request: %+v %v", rep, err)
	}
	if took := time.Since(t0); took > time.Second {
		t.Errorf("the quick request waited %s behind the hanging one", took)
	}
	quick := <-seenCh
	if quick.left > 5*time.Second || quick.left < 4*time.Second {
		t.Errorf("the quick handler had %s, its requester waited 5s", quick.left)
	}
	<-done // answered or not: its handler's ctx ended with it
	select {
	case s := <-seenCh:
		if s.left > 800*time.Millisecond || s.ended > time.Second || s.id != "r-1" {
			t.Errorf("the hanging handler: %+v; want at most 800ms, ended with its requester, id r-1", s)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the hanging handler went on after its requester gave up")
	}
}
