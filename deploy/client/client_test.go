package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadSSE(t *testing.T) {
	in := ": comment\r\nevent: step\r\ndata: {\"a\":1}\r\n\r\n" +
		"data: line1\ndata: line2\n\n" +
		"event: empty\n\n" +
		"event: log\ndata:{\"b\":2}\n\n" +
		"event: tail\ndata: x"
	type ev struct{ kind, data string }
	var got []ev
	if err := ReadSSE(strings.NewReader(in), func(k string, d []byte) error {
		got = append(got, ev{k, string(d)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []ev{{"step", `{"a":1}`}, {"message", "line1\nline2"}, {"log", `{"b":2}`}, {"tail", "x"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	stop := errors.New("stop")
	if err := ReadSSE(strings.NewReader(in), func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("callback error not returned: %v", err)
	}
}

func TestAPIErrorCarriesProblems(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(401)
			_, _ = io.WriteString(w, `{"error":"missing or wrong API token"}`)
			return
		}
		if r.URL.Query().Get("check") != "0" {
			t.Errorf("check=false did not send ?check=0: %s", r.URL)
		}
		w.WriteHeader(400)
		_, _ = io.WriteString(w, `{"error":"config rejected: 1 problem","problems":[{"path":"components.nats[1]","component":"nats","ip":"10.0.0.300","reason":"not an IPv4 address"}]}`)
	}))
	defer srv.Close()
	ctx := context.Background()

	_, _, err := New(srv.URL, "tok").SetConfig(ctx, []byte(`{}`), false)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Message != "config rejected: 1 problem" || len(ae.Problems) != 1 || ae.Problems[0].Path != "components.nats[1]" {
		t.Fatalf("400: %#v", err)
	}
	_, _, err = New(srv.URL, "wrong").Config(ctx)
	if !IsAuth(err) || IsUnreachable(err) {
		t.Fatalf("401 not an auth error: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	_, _, err = New(addr, "tok").Status(context.Background())
	if !IsUnreachable(err) || IsAuth(err) {
		t.Fatalf("closed port: %v", err)
	}
}

func TestHardwareOneOrMany(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("comp") == "all" && r.URL.Query().Get("ip") == "0.0.0.0" {
			_, _ = io.WriteString(w, `[{"Comp":"nats","IP":"10.0.0.1","CPU":2,"RAM":4049952,"DISK":54988.8},{"Comp":"web","IP":"10.0.0.2","CPU":1,"RAM":1024,"DISK":10}]`)
			return
		}
		_, _ = io.WriteString(w, `{"Comp":"nats","IP":"10.0.0.1","CPU":2,"RAM":4049952,"DISK":54988.8}`)
	}))
	defer srv.Close()
	c := New(srv.URL, "tok")
	all, _, err := c.Hardware(context.Background(), "", "")
	if err != nil || len(all) != 2 || all[1].IP != "10.0.0.2" {
		t.Fatalf("all: %v %v", all, err)
	}
	one, _, err := c.Hardware(context.Background(), "nats", "10.0.0.1")
	if err != nil || len(one) != 1 || one[0].RAM != 4049952 || one[0].DISK != 54988.8 {
		t.Fatalf("one: %v %v", one, err)
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DE_API_TOKEN", "")
	if _, err := Token(dir); err == nil {
		t.Fatal("no token file: no error")
	}
	if err := os.WriteFile(filepath.Join(dir, "api-token"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := Token(dir); err != nil || tok != "from-file" {
		t.Fatalf("file: %q %v", tok, err)
	}
	t.Setenv("DE_API_TOKEN", " from-env ")
	if tok, err := Token(dir); err != nil || tok != "from-env" {
		t.Fatalf("env: %q %v", tok, err)
	}
}

// A stream that breaks before "finished" is reopened; the replayed log
// lines are not handed over twice.
func TestFollowReconnects(t *testing.T) {
	old := retryDelay
	retryDelay = 10 * time.Millisecond
	defer func() { retryDelay = old }()

	var conns atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/deployment-engine/deployments/d-1/events":
			n := conns.Add(1)
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "event: deployment\ndata: {\"id\":\"d-1\",\"state\":\"running\",\"steps\":[{\"id\":\"s1\",\"state\":\"pending\"},{\"id\":\"s2\",\"state\":\"pending\"}]}\n\n")
			fmt.Fprint(w, "event: step\ndata: {\"id\":\"s1\",\"state\":\"running\"}\n\n")
			fmt.Fprint(w, "event: log\ndata: {\"step\":\"s1\",\"seq\":1,\"line\":\"one\"}\n\n")
			if n == 1 {
				return // the connection drops
			}
			fmt.Fprint(w, "event: log\ndata: {\"step\":\"s1\",\"seq\":2,\"line\":\"two\"}\n\n")
			fmt.Fprint(w, "event: finished\ndata: {\"id\":\"d-1\",\"state\":\"succeeded\",\"changed\":2}\n\n")
		case "/deployment-engine/deployments/d-1":
			state := "running"
			if conns.Load() > 1 {
				state = "succeeded"
			}
			fmt.Fprintf(w, `{"id":"d-1","state":%q,"changed":2,"steps":[]}`, state)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var lines []string
	d, err := New(srv.URL, "tok").Follow(context.Background(), "d-1", func(ev Event) error {
		if ev.Log != nil {
			lines = append(lines, ev.Log.Line)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != "succeeded" || conns.Load() != 2 {
		t.Fatalf("state %s after %d connections", d.State, conns.Load())
	}
	if strings.Join(lines, ",") != "one,two" {
		t.Fatalf("log lines %v, want one,two once each", lines)
	}
}
