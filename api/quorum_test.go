package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// With two servers of three gone, a route that a service would answer
// from its memory answers 503 saying the store is unavailable; once the
// quorum is back, it is answered again.
func TestNoQuorumIs503(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-server cluster")
	}
	c := bustest.StartCluster(t, 3)
	nc, _ := c.Connect()
	svc, err := micro.AddService(nc, micro.Config{Name: "planner", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	subj := subject.ConfigGet()
	if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(slog.New(slog.NewTextHandler(io.Discard, nil)), func(context.Context, micro.Request) (int, any, error) {
		// The config as the planner's memory holds it.
		return 200, contract.Config{Components: map[string][]string{"web": {"10.0.0.1"}}}, nil
	}), micro.WithEndpointSubject(subj)); err != nil {
		t.Fatal(err)
	}
	h, err := New(Options{NC: nc, AuthNone: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(checked(t, h))
	defer srv.Close()
	get := func() (int, string) {
		resp, err := http.Get(srv.URL + "/deployment-engine/config")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e contract.ErrorBody
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error
	}
	if code, _ := get(); code != 200 {
		t.Fatalf("with the quorum: %d", code)
	}
	// Stop the two servers the connection is not on: the API keeps its bus.
	on := nc.ConnectedServerName()
	for i, s := range c.Servers {
		if s.Name() != on {
			c.Stop(i)
		}
	}
	waitCode(t, get, 503, kit.UnavailableMsg, 40*time.Second)
	for i := range c.Servers {
		c.Start(i)
	}
	waitCode(t, get, 200, "", 40*time.Second)
}

func waitCode(t *testing.T, get func() (int, string), code int, msg string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got, gotMsg := get()
		if got == code && gotMsg == msg {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d %q, want %d %q", within, got, gotMsg, code, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
