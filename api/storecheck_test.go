package api

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
)

// While one request probes a store that does not answer, the others take
// the last answer at once instead of queueing behind the probe (up to 2 s
// each, one after another, when it held the check's mutex).
func TestStoreCheckProbesWithoutHoldingOthers(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	// A JetStream API that takes every request and answers none.
	sub, err := b.NC.Subscribe("hang.>", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	js, err := jetstream.NewWithAPIPrefix(b.NC, "hang.")
	if err != nil {
		t.Fatal(err)
	}
	c := &storeCheck{js: js, every: time.Second}

	probed := make(chan bool, 1)
	go func() { probed <- c.available(context.Background()) }()
	time.Sleep(200 * time.Millisecond) // the probe waits on the silent API
	t0 := time.Now()
	if !c.available(context.Background()) {
		t.Error("a request during the first probe: the store taken for down before the probe answered")
	}
	if took := time.Since(t0); took > 500*time.Millisecond {
		t.Errorf("a request waited %s behind another's probe", took)
	}
	select {
	case up := <-probed:
		if up {
			t.Error("a store that did not answer its probe taken for up")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the probe outlived its 2 s bound")
	}
	if c.available(context.Background()) {
		t.Error("the probe's answer was not kept for the next request")
	}
}

// A store that answers its probe with an error that is not one of the
// "unavailable" kinds (a server without a quorum may say its cluster is
// not current) is down all the same: a route must not answer from memory.
func TestStoreCheckTakesAnyProbeErrorForDown(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	sub, err := b.NC.Subscribe("odd.>", func(m *nats.Msg) {
		_ = m.Respond([]byte(`{"type":"io.nats.jetstream.api.v1.account_info_response","error":{"code":500,"err_code":10074,"description":"JetStream cluster not current"}}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	js, err := jetstream.NewWithAPIPrefix(b.NC, "odd.")
	if err != nil {
		t.Fatal(err)
	}
	c := &storeCheck{js: js, every: time.Second}
	if c.available(context.Background()) {
		t.Error("a store whose probe failed (500, cluster not current) taken for up")
	}
	real, err := jetstream.New(b.NC)
	if err != nil {
		t.Fatal(err)
	}
	c = &storeCheck{js: real, every: time.Second}
	if !c.available(context.Background()) {
		t.Error("a working store taken for down")
	}
}
