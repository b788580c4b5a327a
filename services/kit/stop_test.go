package kit_test

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Stop ends a handler in flight, one waiting on a service that never
// answers with no deadline from its requester (MaxHandlerTime, 10 min,
// before), returns at once, and leaves no goroutine behind; a request
// delivered after it is refused with 503, and no work starts after it.
func TestStopEndsHandlersInFlight(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	// A service that takes requests and never answers.
	silent, err := b.NC.SubscribeSync("test.silent")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = silent.Unsubscribe() }()
	svc, err := micro.AddService(b.NC, micro.Config{Name: "t", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	hs := kit.NewHandlers(slog.New(slog.NewTextHandler(io.Discard, nil)))
	started := make(chan struct{}, 1)
	h := func(ctx context.Context, req micro.Request) (int, any, error) {
		started <- struct{}{}
		_, err := kit.Request(ctx, b.NC, "test.silent", nil)
		return 0, nil, err
	}
	subj := subject.MonitorStatus()
	if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Concurrent(8, hs.Endpoint(h)), micro.WithEndpointSubject(subj)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	answered := make(chan kit.Reply, 1)
	go func() {
		// A requester that names no deadline of its own.
		rep, err := kit.Request(context.Background(), b.NC, subj, nil)
		if err != nil {
			t.Error(err)
		}
		answered <- rep
	}()
	<-started
	t0 := time.Now()
	if !hs.Stop(10 * time.Second) {
		t.Fatal("Stop: a handler still runs")
	}
	if took := time.Since(t0); took > time.Second {
		t.Errorf("Stop took %s", took)
	}
	if rep := <-answered; rep.Code != 503 || !strings.Contains(string(rep.Body), "the service is stopping") {
		t.Errorf("the handler cut short answered %+v, want 503 the service is stopping", rep)
	}
	if hs.Go(func(context.Context) { t.Error("work ran after Stop") }) {
		t.Error("Go after Stop reported the work started")
	}
	rep, err := kit.Request(context.Background(), b.NC, subj, nil)
	if err != nil || rep.Code != 503 {
		t.Errorf("a request after Stop: %+v %v, want 503", rep, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Stop, %d before the request:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}
