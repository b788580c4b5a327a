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
func TestTimeoutSaysWhetherToLookFirst(t *testing.T) {
	nc := bustest.Start(t, bus.ServerOptions{}).NC
	svc, err := micro.AddService(nc, micro.Config{Name: "slow", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slow := func(context.Context, micro.Request) (int, any, error) {
		<-release
		return 200, map[string]string{}, nil
	}
	for _, subj := range []string{subject.DeployStart(), subject.MonitorStatus()} {
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
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/deployment-engine/deploy", "may still take effect"},
		{"GET", "/deployment-engine/deploy", "may still take effect"}, // the SPEC's deploy by GET
		{"GET", "/deployment-engine/status", "try again"},
	} {
		resp, body := do(t, tc.method, ts.URL+tc.path, "")
		if resp.StatusCode != 504 || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s %s not answered in time: %d %s, want 504 saying %q", tc.method, tc.path, resp.StatusCode, body, tc.want)
		}
	}
}
