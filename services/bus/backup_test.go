package bus_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/subject"
)

// A backup taken from one store and restored into an empty one brings
// back every bucket's values, the events and the consumers' positions.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	src := bustest.Start(t, bus.ServerOptions{})
	if _, err := src.Res.Config.Put(ctx, bus.KeyConfig, []byte(`{"components":{}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Res.Engine.Put(ctx, "id", []byte("e-backup")); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := src.Res.JS.Publish(ctx, subject.EngineEvent("test"), []byte(`{"v":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := src.Res.JS.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	m, err := cons.Next()
	if err != nil {
		t.Fatal(err)
	}
	_ = m.Ack()
	var buf bytes.Buffer
	got, err := bus.Backup(ctx, src.NC, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, bus.BackupStreams()) {
		t.Fatalf("backed up %v, want %v", got, bus.BackupStreams())
	}

	// An engine that started on a wiped store: its streams exist, empty.
	dst := bustest.Start(t, bus.ServerOptions{})
	back, err := bus.Restore(ctx, dst.NC, bytes.NewReader(buf.Bytes()))
	if err != nil || len(back) != len(got) {
		t.Fatalf("restored %v: %v", back, err)
	}
	res, err := bus.Declare(ctx, dst.NC)
	if err != nil {
		t.Fatal(err)
	}
	for bucket, kv := range map[string]jetstream.KeyValue{"config": res.Config, "engine": res.Engine} {
		key := bus.KeyConfig
		if bucket == "engine" {
			key = "id"
		}
		if _, err := kv.Get(ctx, key); err != nil {
			t.Errorf("%s after restore: %v", bucket, err)
		}
	}
	info, err := res.Events.Info(ctx)
	if err != nil || info.State.Msgs != 3 {
		t.Fatalf("events after restore: %+v %v", info, err)
	}
	c, err := res.JS.Consumer(ctx, bus.StreamEvents, "reader")
	if err != nil {
		t.Fatalf("consumer after restore: %v", err)
	}
	ci, err := c.Info(ctx)
	if err != nil || ci.AckFloor.Stream != 1 || ci.NumPending != 2 {
		t.Fatalf("consumer position after restore: %+v %v", ci, err)
	}

	// A damaged backup is refused with an error, never a crash.
	if _, err := bus.Restore(ctx, dst.NC, bytes.NewReader(buf.Bytes()[:100])); err == nil {
		t.Fatal("a truncated backup restored without an error")
	}
}
