package api

import (
	"net/http/httptest"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		body, query string
		want        target
		bad         bool
	}{
		{body: `{"name": "nats", "ip": "10.0.0.5"}`, want: target{"nats", "10.0.0.5"}},
		{body: `{"Comp": "nats", "Ip": "10.0.0.5"}`, want: target{"nats", "10.0.0.5"}},
		{body: `{"COMPONENT": " nats ", "IP": "10.0.0.5"}`, want: target{"nats", "10.0.0.5"}},
		{body: `{"name": "all", "ip": "0.0.0.0"}`, want: target{"all", "0.0.0.0"}},
		{query: "comp=web&ip=10.0.0.6", want: target{"web", "10.0.0.6"}},
		{query: "name=web&ip=10.0.0.6", want: target{"web", "10.0.0.6"}},
		{body: `{"name": "nats"`, bad: true},
		{body: `["nats"]`, bad: true},
		{body: `{"name": 5, "ip": "10.0.0.5"}`, bad: true},
		{body: `{"name": "nats", "ip": "10.0.0.5", "force": true}`, bad: true},
		{bad: true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/deployment-engine/hardware?"+tt.query, nil)
		got, problem := parseTarget([]byte(tt.body), r)
		if (problem != "") != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("body %q query %q: got %+v, problem %q", tt.body, tt.query, got, problem)
		}
	}
}
