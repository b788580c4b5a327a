package kit_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// A body the handler encoded itself arrives byte for byte (not re-encoded:
// the spaces stay); any other body is encoded as JSON.
func TestEndpointSendsRawJSONAsItIs(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	svc, err := micro.AddService(b.NC, micro.Config{Name: "t", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	h := func(_ context.Context, req micro.Request) (int, any, error) {
		if string(req.Data()) == `"raw"` {
			return 200, kit.RawJSON(`[ {"a": 1} ]`), nil
		}
		return 201, []string{"x"}, nil
	}
	subj := subject.MonitorStatus()
	if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(slog.New(slog.NewTextHandler(io.Discard, nil)), h), micro.WithEndpointSubject(subj)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		req, body string
		code      int
	}{{"raw", `[ {"a": 1} ]`, 200}, {"value", `["x"]`, 201}} {
		rep, err := kit.Request(context.Background(), b.NC, subj, c.req)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Code != c.code || string(rep.Body) != c.body {
			t.Errorf("%s: got %d %s, want %d %s", c.req, rep.Code, rep.Body, c.code, c.body)
		}
	}
}
