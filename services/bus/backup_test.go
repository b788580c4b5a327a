package bus_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

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
	// An uploaded release: a config restored may name it.
	if _, err := src.Res.Releases.PutBytes(ctx, "dummy/1/release.MF", []byte("name: dummy\nversion: 1\n")); err != nil {
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
	back, err := bus.Restore(ctx, dst.NC, bytes.NewReader(buf.Bytes()), t.TempDir())
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
	if mf, err := res.Releases.GetBytes(ctx, "dummy/1/release.MF"); err != nil || !strings.Contains(string(mf), "name: dummy") {
		t.Errorf("the uploaded release after restore: %q %v", mf, err)
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
	if _, err := bus.Restore(ctx, dst.NC, bytes.NewReader(buf.Bytes()[:100]), t.TempDir()); err == nil {
		t.Fatal("a truncated backup restored without an error")
	}
}

// storeState describes every stream a backup holds, as restore must leave
// it when it fails: each message (sequence, subject, headers, data), each
// consumer's position, or that the stream is absent.
func storeState(t *testing.T, js jetstream.JetStream) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	for _, name := range bus.BackupStreams() {
		st, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			fmt.Fprintf(&b, "%s: absent\n", name)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// An empty stream's first sequence is 0 when made, last+1 when
		// restored: the same stream.
		fmt.Fprintf(&b, "%s: %d msgs, last %d\n", name, info.State.Msgs, info.State.LastSeq)
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := st.GetMsg(ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "  %d %s %v %q\n", seq, m.Subject, m.Header, m.Data)
		}
		for c := range st.ListConsumers(ctx).Info() {
			fmt.Fprintf(&b, "  consumer %s: ack floor %d, pending %d\n", c.Name, c.AckFloor.Stream, c.NumPending)
		}
	}
	return b.String()
}

// entryData is where each entry's data starts in a tar, and its size.
func entryData(t *testing.T, backup []byte) map[string][2]int64 {
	t.Helper()
	r := bytes.NewReader(backup)
	tr := tar.NewReader(r)
	out := map[string][2]int64{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = [2]int64{r.Size() - int64(r.Len()), h.Size}
	}
}

// A damaged backup is refused before anything is replaced, and a restore
// that fails on the way puts every stream back: the store is exactly as it
// was. A good backup still restores.
func TestRestoreAllOrNothing(t *testing.T) {
	ctx := context.Background()
	src := bustest.Start(t, bus.ServerOptions{})
	fill := func(res *bus.Resources, who string) {
		t.Helper()
		for kv, key := range map[jetstream.KeyValue]string{res.Config: bus.KeyConfig, res.Deployments: "d-" + who, res.Engine: "id"} {
			if _, err := kv.Put(ctx, key, []byte(`{"from":"`+who+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		for _, subj := range []string{subject.Audit("config"), subject.Audit("deploy"), subject.EngineEvent("test")} {
			if _, err := res.JS.Publish(ctx, subj, []byte(`{"v":1,"from":"`+who+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		// A consumer that has read one event.
		cons, err := res.JS.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: "reader-" + who, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		m, err := cons.Next()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The audit stream sources its entries from the events: wait for them.
	waitAudit := func(res *bus.Resources) {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if info, err := res.Audit.Info(ctx); err == nil && info.State.Msgs == 2 {
				return
			}
		}
		t.Fatal("the audit stream did not source its entries")
	}
	fill(src.Res, "backup")
	waitAudit(src.Res)
	var good bytes.Buffer
	if _, err := bus.Backup(ctx, src.NC, &good); err != nil {
		t.Fatal(err)
	}

	dst := bustest.Start(t, bus.ServerOptions{})
	fill(dst.Res, "current")
	waitAudit(dst.Res)
	before := storeState(t, dst.Res.JS)
	if !strings.Contains(before, "current") || !strings.Contains(before, "de.evt.audit.deploy") {
		t.Fatalf("the store's state misses what it holds:\n%s", before)
	}

	at := entryData(t, good.Bytes())
	flip := func(entry string, where float64) []byte {
		b := bytes.Clone(good.Bytes())
		off := at[entry][0] + int64(float64(at[entry][1])*where)
		b[off] ^= 0x20
		return b
	}
	damaged := []struct {
		name   string
		backup []byte
		want   string
	}{
		{"a byte flipped in the middle", flip("KV_DE_CONFIG.snap", 0.5), "KV_DE_CONFIG.snap"},
		{"a byte flipped in the last stream", flip("KV_DE_ENGINE.snap", 0.7), "KV_DE_ENGINE.snap"},
		{"a digit flipped in a stream's config", flip("DE_AUDIT.json", 0.5), "DE_AUDIT.json"},
		{"a byte flipped in a tar header", func() []byte { b := bytes.Clone(good.Bytes()); b[at["KV_DE_NODES.json"][0]-512+100] ^= 1; return b }(), "damaged"},
		{"truncated", good.Bytes()[:len(good.Bytes())*2/3], "damaged"},
	}
	for _, d := range damaged {
		undo := t.TempDir()
		_, err := bus.Restore(ctx, dst.NC, bytes.NewReader(d.backup), undo)
		if !errors.Is(err, bus.ErrBackupDamaged) || !strings.Contains(err.Error(), d.want) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Errorf("%s: got %v, want ErrBackupDamaged naming %s", d.name, err, d.want)
		}
		if after := storeState(t, dst.Res.JS); after != before {
			t.Fatalf("%s: the store changed:\n%s\nwas\n%s", d.name, after, before)
		}
		if left, _ := os.ReadDir(undo); len(left) != 0 {
			t.Errorf("%s: left %v", d.name, left)
		}
	}

	// A newer format is refused as such, before anything is replaced.
	newer := rewrite(t, good.Bytes(), func(name string, data []byte) []byte {
		if name == "MANIFEST.json" {
			return bytes.Replace(data, []byte(`"v":1`), []byte(`"v":2`), 1)
		}
		return data
	})
	if _, err := bus.Restore(ctx, dst.NC, bytes.NewReader(newer), t.TempDir()); err == nil || !strings.Contains(err.Error(), "the backup's format is v2, this engine restores v1") {
		t.Fatalf("a newer format: %v", err)
	}
	if after := storeState(t, dst.Res.JS); after != before {
		t.Fatalf("a newer format: the store changed:\n%s\nwas\n%s", after, before)
	}

	// A good backup the server refuses halfway (its KV_DE_NODES's subjects
	// belong to another stream by now): every stream replaced before it is
	// put back, and KV_DE_NODES, absent before, stays absent.
	if err := dst.Res.JS.DeleteStream(ctx, "KV_"+bus.KVNodes); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Res.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "SQUATTER", Subjects: []string{"$KV." + bus.KVNodes + ".>"}}); err != nil {
		t.Fatal(err)
	}
	before = storeState(t, dst.Res.JS)
	_, err := bus.Restore(ctx, dst.NC, bytes.NewReader(good.Bytes()), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "restore KV_"+bus.KVNodes) || !strings.Contains(err.Error(), "the previous streams were put back") {
		t.Fatalf("a restore the server refuses: %v", err)
	}
	if after := storeState(t, dst.Res.JS); after != before {
		t.Fatalf("the store changed:\n%s\nwas\n%s", after, before)
	}
	if err := dst.Res.JS.DeleteStream(ctx, "SQUATTER"); err != nil {
		t.Fatal(err)
	}

	// The good backup restores, and so does one written before backups
	// had a manifest.
	noManifest := rewrite(t, good.Bytes(), func(name string, data []byte) []byte {
		if name == "MANIFEST.json" {
			return nil
		}
		return data
	})
	for _, b := range [][]byte{good.Bytes(), noManifest} {
		back, err := bus.Restore(ctx, dst.NC, bytes.NewReader(b), t.TempDir())
		if err != nil || len(back) != len(bus.BackupStreams()) {
			t.Fatalf("restored %v: %v", back, err)
		}
		if got, want := storeState(t, dst.Res.JS), storeState(t, src.Res.JS); got != want {
			t.Fatalf("restored:\n%s\nwant\n%s", got, want)
		}
	}
}

// rewrite copies a backup's entries through edit; nil leaves one out.
func rewrite(t *testing.T, backup []byte, edit func(name string, data []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(backup)), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if data = edit(h.Name, data); data == nil {
			continue
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
