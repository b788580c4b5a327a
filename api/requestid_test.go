package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// Every error answer carries a correlation id, in the X-Request-Id header
// and as "id" in its JSON, and the log line that explains it has the same
// id: the API's own, and for an internal error the service's, whose text
// the client never sees.
func TestErrorsCarryTheirRequestID(t *testing.T) {
	nc := bustest.Start(t, bus.ServerOptions{}).NC
	var apiLog, svcLog bustest.LogBuffer
	svc, err := micro.AddService(nc, micro.Config{Name: "monitor", Version: "1.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	fail := map[string]kit.Handler{
		subject.MonitorStatus(): func(context.Context, micro.Request) (int, any, error) {
			return 0, nil, errors.New("disk on fire at /var/lib/x")
		},
		subject.MonitorHardware(): func(context.Context, micro.Request) (int, any, error) {
			return 0, nil, kit.Errorf(400, "the config has no component %q", "nope")
		},
		subject.MonitorControl(): func(context.Context, micro.Request) (int, any, error) {
			return 502, contract.ControlOutcome{Error: "stop failed on 1 of 1", Results: []contract.ControlResult{{Comp: "web", Ip: "10.0.0.5", Error: "monit: <stuck>"}}}, nil
		},
	}
	for subj, h := range fail {
		if err := svc.AddEndpoint(subject.EndpointName(subj), kit.Endpoint(slog.New(slog.NewTextHandler(&svcLog, nil)), h), micro.WithEndpointSubject(subj)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(Options{NC: nc, AuthNone: true, Logger: slog.New(slog.NewTextHandler(&apiLog, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(checked(t, h))
	t.Cleanup(ts.Close)

	tests := []struct {
		name, method, path, body, clientID string
		code                               int
		msg                                string // in the answer
		logged                             string // in the log line with the id
		svcLogged                          string // in the service's log line with the id
	}{
		{name: "internal", method: "GET", path: "/deployment-engine/status", code: 500,
			msg: "internal error", logged: "internal error", svcLogged: "disk on fire"},
		{name: "service refused", method: "GET", path: "/deployment-engine/hardware?comp=nope&ip=10.0.0.1", code: 400,
			msg: "no component", logged: "no component"},
		{name: "api refused", method: "PUT", path: "/deployment-engine/stop", body: `{"force": true}`, code: 400,
			msg: "unknown field", logged: "unknown field"},
		{name: "no route", method: "GET", path: "/deployment-engine/nowhere", code: 404, msg: "no such route", logged: "no such route"},
		{name: "outcome beside the error", method: "PUT", path: "/deployment-engine/stop", body: `{"name": "web", "ip": "10.0.0.5"}`,
			code: 502, msg: "stop failed", logged: "stop failed"},
		{name: "client's id", method: "GET", path: "/deployment-engine/nowhere", clientID: "trace-42", code: 404, msg: "no such route", logged: "no such route"},
		{name: "client's id not plain", method: "GET", path: "/deployment-engine/nowhere", clientID: "a b level=ERROR msg=forged", code: 404, msg: "no such route", logged: "no such route"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.clientID != "" {
				hdr = []string{HeaderRequestID, tt.clientID}
			}
			resp, body := do(t, tt.method, ts.URL+tt.path, tt.body, hdr...)
			id := resp.Header.Get(HeaderRequestID)
			var e contract.ErrorBody
			if resp.StatusCode != tt.code || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, tt.msg) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			if id == "" || e.ID != id || seen[id] {
				t.Fatalf("id %q in the header, %q in the body (seen before: %v)", id, e.ID, seen[id])
			}
			seen[id] = true
			switch {
			case tt.clientID == "trace-42" && id != tt.clientID:
				t.Errorf("the client's plain id %q was replaced by %q", tt.clientID, id)
			case tt.clientID != "" && tt.clientID != "trace-42" && id == tt.clientID:
				t.Errorf("the client's id %q, which is not plain, was kept", tt.clientID)
			}
			if tt.name == "outcome beside the error" {
				var out contract.ControlOutcome
				if json.Unmarshal(body, &out) != nil || len(out.Results) != 1 || out.Results[0].Error != "monit: <stuck>" {
					t.Errorf("the outcome beside the error was lost: %s", body)
				}
			}
			if !hasLine(apiLog.String(), "id="+id, tt.logged) {
				t.Errorf("no API log line with id=%s and %q:\n%s", id, tt.logged, apiLog.String())
			}
			if tt.svcLogged != "" && !hasLine(svcLog.String(), "id="+id, tt.svcLogged) {
				t.Errorf("no service log line with id=%s and %q:\n%s", id, tt.svcLogged, svcLog.String())
			}
			if tt.svcLogged != "" && strings.Contains(string(body), tt.svcLogged) {
				t.Errorf("an internal error's text reached the client: %s", body)
			}
		})
	}

	// A success carries the header too, and its body is as the service sent it.
	resp, body := do(t, "GET", ts.URL+"/version", "")
	if resp.StatusCode != 200 || resp.Header.Get(HeaderRequestID) == "" || bytes.Contains(body, []byte(`"id"`)) {
		t.Errorf("success: %d %q %s", resp.StatusCode, resp.Header.Get(HeaderRequestID), body)
	}
}

// hasLine tells whether one line of log holds every one of words.
func hasLine(log string, words ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}
