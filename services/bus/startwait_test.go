package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

func apiErr(status, code int, desc string) error {
	return fmt.Errorf("stream DE_STEPS: %w", &jetstream.APIError{Code: status, ErrorCode: jetstream.ErrorCode(code), Description: desc})
}

var (
	noPeers      = apiErr(400, 10005, "no suitable peers for placement")
	insufficient = apiErr(503, 10023, "insufficient resources")
	nameInUse    = apiErr(400, 10058, "stream name already in use with a different configuration")
)

func TestNotYet(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no servers", fmt.Errorf("bus: connect: %w", nats.ErrNoServers), true},
		{"no responders", nats.ErrNoResponders, true},
		{"deadline", context.DeadlineExceeded, true},
		{"no peers", noPeers, true},
		{"no meta leader", apiErr(503, 10008, "JetStream system temporarily unavailable"), true},
		{"leader changing", apiErr(500, 10009, "JetStream cluster can not handle request"), true},
		{"not enabled", apiErr(503, 10076, "JetStream not enabled"), true},
		{"insufficient resources", insufficient, false},
		{"config mismatch", nameInUse, false},
		{"closed", nats.ErrConnectionClosed, false},
		{"other", errors.New("authorization violation"), false},
	} {
		if got := bus.NotYet(tc.err); got != tc.want {
			t.Errorf("%s: NotYet(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// Await tries again while the cluster answers "not yet", logging what it
// waits for, and returns at once what no wait mends.
func TestAwait(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errs  []error // what the tries return, in order; then nil
		tries int
		want  error
	}{
		{"ready at once", nil, 1, nil},
		{"forming", []error{nats.ErrNoResponders, noPeers, context.DeadlineExceeded}, 4, nil},
		{"config mismatch", []error{nameInUse, noPeers}, 1, nameInUse},
		{"insufficient resources", []error{insufficient}, 1, insufficient},
		{"transient then permanent", []error{noPeers, nameInUse}, 2, nameInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			tries := 0
			err := bus.Await(context.Background(), slog.New(slog.NewTextHandler(&logs, nil)), "stream DE_STEPS", func(context.Context) error {
				tries++
				if tries <= len(tc.errs) {
					return tc.errs[tries-1]
				}
				return nil
			})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if tries != tc.tries {
				t.Errorf("%d tries, want %d", tries, tc.tries)
			}
			if waits := strings.Count(logs.String(), "for=\"stream DE_STEPS\""); waits != tc.tries-1 && tc.want == nil {
				t.Errorf("%d waits logged, want %d:\n%s", waits, tc.tries-1, logs.String())
			}
		})
	}
}

// A wait ends with ctx, naming what to check and wrapping the last error.
func TestAwaitBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	start := time.Now()
	tries := 0
	err := bus.Await(ctx, nil, "kv DE_CONFIG", func(context.Context) error { tries++; return noPeers })
	if !errors.Is(err, noPeers) || !strings.Contains(err.Error(), "never became available") || !strings.Contains(err.Error(), "--start-timeout") {
		t.Errorf("err %v", err)
	}
	if tries < 2 {
		t.Errorf("%d tries in 700ms", tries)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %s", d)
	}
}

// Declare against a NATS cluster that is not running yet when it begins,
// as at boot: it waits for the servers, the JetStream leader and the peers,
// and declares everything on 3 servers once they are there.
func TestDeclareWaitsForColdCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a 3-server cluster")
	}
	c := bustest.NewCluster(t, 3)
	started := make(chan error, 1)
	go func() {
		time.Sleep(2 * time.Second)
		var errs []error
		for i := range c.Servers {
			errs = append(errs, c.Launch(i))
			time.Sleep(500 * time.Millisecond)
		}
		started <- errors.Join(errs...)
	}()
	defer func() {
		if err := <-started; err != nil {
			t.Error(err)
		}
	}()
	res := coldDeclare(t, c.URL(), 90*time.Second)
	if res == nil {
		return
	}
	for _, name := range []string{bus.StreamSteps, bus.StreamAudit, "KV_" + bus.KVConfig, "KV_" + bus.KVEngine} {
		s, err := res.JS.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("%s has %d replicas, want 3", name, r)
		}
	}
}

// coldDeclare connects to url and declares as a process of the engine
// does at start, within bound, and reports how the waits were logged.
func coldDeclare(t *testing.T, url string, bound time.Duration) *bus.Resources {
	t.Helper()
	var logs bustest.LogBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), bound)
	defer cancel()
	start := time.Now()
	var nc *nats.Conn
	err := bus.Await(ctx, log, "the NATS servers", func(context.Context) (err error) {
		nc, err = bus.Dial(url, "test")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	res, err := bus.Declare(ctx, nc, bus.WithLogger(log))
	if err != nil {
		t.Fatalf("declare: %v\n%s", err, logs.String())
	}
	t.Logf("declared after %s, %d waits logged", time.Since(start).Round(time.Millisecond), strings.Count(logs.String(), "not ready yet"))
	if !strings.Contains(logs.String(), "not ready yet") {
		t.Errorf("no wait logged:\n%s", logs.String())
	}
	if res.Replicas != 3 {
		t.Errorf("%d replicas, want 3", res.Replicas)
	}
	return res
}

// A stream that cannot be declared as the engine needs it (another owns
// its subjects) fails the declare at once: no wait mends it.
func TestDeclarePermanentErrorNotRetried(t *testing.T) {
	srv, err := bus.StartServer(context.Background(), bus.ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	nc, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{subject.AllSteps}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = bus.Declare(ctx, nc)
	if err == nil || !strings.Contains(err.Error(), "stream "+bus.StreamSteps) || strings.Contains(err.Error(), "never became available") {
		t.Errorf("err %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("declare returned after %s: retried a permanent error", d)
	}
}

// Retry and RetryLong try again what the store was not ready for and
// return anything else at once; only Retry bounds a try, so a long put
// through RetryLong is not cut off at 10 s.
func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		long  bool
		errs  []error
		tries int
		want  error
	}{
		{"ready at once", false, nil, 1, nil},
		{"no leader yet", false, []error{nats.ErrNoResponders, noPeers}, 3, nil},
		{"insufficient resources", false, []error{insufficient}, 1, insufficient},
		{"config mismatch", true, []error{nameInUse}, 1, nameInUse},
		{"long, no leader yet", true, []error{jetstream.ErrNoStreamResponse}, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			retry := bus.Retry
			if tc.long {
				retry = bus.RetryLong
			}
			tries := 0
			err := retry(context.Background(), func(ctx context.Context) error {
				tries++
				if _, bounded := ctx.Deadline(); bounded == tc.long {
					t.Errorf("try %d: bounded %v", tries, bounded)
				}
				if tries <= len(tc.errs) {
					return tc.errs[tries-1]
				}
				return nil
			})
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if tries != tc.tries {
				t.Errorf("%d tries, want %d", tries, tc.tries)
			}
		})
	}
}
