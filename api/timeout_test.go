package api

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// A command the engine did not answer in time answers 504. A change (a
// route with an audit action) may still take effect after it, so its
// answer says to look before sending it again; a read says to try again.
// A route whose answer waits for the nodes (a deploy checks each first,
// and its turn may come after other clusters' checks) waits longer than
// the API's Timeout, and gets the answer that came after it.
func TestTimeoutSaysWhetherToLookFirst(t *testing.T) {
	nc := bustest.Start(t, bus.ServerOptions{}).NC
	svc, err := micro.AddService(nc, micro.Config{Name: "slow", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	slow := func(context.Context, micro.Request) (int, any, error) {
		time.Sleep(time.Second) // past the API's Timeout, whatever the requester's wait
		return 202, map[string]string{"id": "d-1"}, nil
	}
	for _, subj := range []string{subject.DeployStart(), subject.DeployCancel(), subject.MonitorStatus()} {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Concurrent(4, kit.Endpoint(slog.New(slog.DiscardHandler), slow)), micro.WithEndpointSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(Options{NC: nc, AuthNone: true, Timeout: 300 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	t.Cleanup(ts.Close)
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"POST", "/deployment-engine/deployments/d-1/cancel", 504, "may still take effect"},
		{"GET", "/deployment-engine/status", 504, "try again"},
		{"POST", "/deployment-engine/deploy", 202, "d-1"},
		{"GET", "/deployment-engine/deploy", 202, "d-1"}, // the SPEC's deploy by GET
	} {
		resp, body := do(t, tc.method, ts.URL+tc.path, "")
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s answered after the API's timeout: %d %s, want %d saying %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.want)
		}
	}
}
