package bus

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BackupStreams are the streams a backup holds: the step queue, the event
// stream, the audit trail and every key-value bucket (each a KV_<bucket> stream), with
// their consumers' positions.
func BackupStreams() []string {
	out := []string{StreamSteps, StreamEvents, StreamAudit}
	for _, kv := range []string{KVConfig, KVDeployments, KVScheduler, KVOwners, KVHostKeys, KVNodes, KVEngine} {
		out = append(out, "KV_"+kv)
	}
	return out
}

// apiError is the error part of a JetStream API answer.
type apiError struct {
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

func (a apiError) err() error {
	if a.Error == nil {
		return nil
	}
	return fmt.Errorf("%s (%d)", a.Error.Description, a.Error.Code)
}

// streamMeta is what a stream's snapshot is restored with.
type streamMeta struct {
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
}

// Backup writes a snapshot of every stream of BackupStreams to w, as a tar
// of <stream>.json (config and state) and <stream>.snap (the server's own
// snapshot, messages and consumers), through the JetStream API, so that it
// works against the embedded server and an external one alike. Streams
// that do not exist are left out; it returns the ones written.
func Backup(ctx context.Context, nc *nats.Conn, w io.Writer) ([]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(w)
	var done []string
	for _, name := range BackupStreams() {
		if _, err := js.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		} else if err != nil {
			return done, fmt.Errorf("backup %s: %w", name, err)
		}
		var snap bytes.Buffer
		meta, err := snapshot(ctx, nc, name, &snap)
		if err != nil {
			return done, fmt.Errorf("backup %s: %w", name, err)
		}
		mb, _ := json.Marshal(meta)
		for _, f := range []struct {
			name string
			data []byte
		}{{name + ".json", mb}, {name + ".snap", snap.Bytes()}} {
			if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o600, Size: int64(len(f.data)), ModTime: time.Now()}); err != nil {
				return done, err
			}
			if _, err := tw.Write(f.data); err != nil {
				return done, err
			}
		}
		done = append(done, name)
	}
	return done, tw.Close()
}

// snapshot streams one stream's snapshot into w.
func snapshot(ctx context.Context, nc *nats.Conn, name string, w io.Writer) (streamMeta, error) {
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return streamMeta{}, err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "chunk_size": 128 << 10})
	rep, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.SNAPSHOT."+name, req)
	if err != nil {
		return streamMeta{}, fmt.Errorf("ask for a snapshot: %w", err)
	}
	var sr struct {
		apiError
		streamMeta
	}
	if err := json.Unmarshal(rep.Data, &sr); err != nil {
		return streamMeta{}, fmt.Errorf("snapshot answer: %w", err)
	}
	if err := sr.err(); err != nil {
		return streamMeta{}, err
	}
	for {
		m, err := sub.NextMsg(30 * time.Second)
		if err != nil {
			return streamMeta{}, fmt.Errorf("snapshot chunk: %w", err)
		}
		if len(m.Data) == 0 {
			// The end: a status of 204 (or none) is success.
			if st := m.Header.Get("Status"); st != "" && st != "204" {
				return streamMeta{}, fmt.Errorf("snapshot failed: %s %s", st, m.Header.Get("Description"))
			}
			return sr.streamMeta, nil
		}
		if _, err := w.Write(m.Data); err != nil {
			return streamMeta{}, err
		}
		if m.Reply != "" {
			_ = m.Respond(nil) // flow control: the server sends more as chunks are acknowledged
		}
	}
}

// Restore puts back every stream of a backup written by Backup, replacing
// a stream of the same name. It returns the streams restored.
func Restore(ctx context.Context, nc *nats.Conn, r io.Reader) ([]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	known := map[string]bool{}
	for _, n := range BackupStreams() {
		known[n] = true
	}
	tr := tar.NewReader(r)
	metas := map[string]streamMeta{}
	var done []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return done, fmt.Errorf("read backup: %w", err)
		}
		var name, kind string
		for _, ext := range []string{".json", ".snap"} {
			if n := len(h.Name) - len(ext); n > 0 && h.Name[n:] == ext {
				name, kind = h.Name[:n], ext
			}
		}
		if !known[name] {
			return done, fmt.Errorf("read backup: %q is not a stream of the engine's", h.Name)
		}
		if kind == ".json" {
			var m streamMeta
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&m); err != nil {
				return done, fmt.Errorf("read backup %s: %w", h.Name, err)
			}
			metas[name] = m
			continue
		}
		m, ok := metas[name]
		if !ok {
			return done, fmt.Errorf("read backup: %s comes before its %s.json", h.Name, name)
		}
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return done, fmt.Errorf("restore %s: remove the current stream: %w", name, err)
		}
		if err := restore(ctx, nc, name, m, tr); err != nil {
			return done, fmt.Errorf("restore %s: %w", name, err)
		}
		done = append(done, name)
	}
	return done, nil
}

func restore(ctx context.Context, nc *nats.Conn, name string, m streamMeta, r io.Reader) error {
	req, _ := json.Marshal(m)
	rep, err := nc.RequestWithContext(ctx, "$JS.API.STREAM.RESTORE."+name, req)
	if err != nil {
		return fmt.Errorf("ask to restore: %w", err)
	}
	var rr struct {
		apiError
		DeliverSubject string `json:"deliver_subject"`
	}
	if err := json.Unmarshal(rep.Data, &rr); err != nil {
		return fmt.Errorf("restore answer: %w", err)
	}
	if err := rr.err(); err != nil {
		return err
	}
	buf := make([]byte, 128<<10)
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			ack, err := nc.Request(rr.DeliverSubject, buf[:n], 30*time.Second)
			if err != nil {
				return fmt.Errorf("send a chunk: %w", err)
			}
			if len(ack.Data) > 0 {
				var ae apiError
				if json.Unmarshal(ack.Data, &ae) == nil && ae.err() != nil {
					return ae.err()
				}
			}
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	end, err := nc.Request(rr.DeliverSubject, nil, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("finish: %w", err)
	}
	var ae apiError
	if err := json.Unmarshal(end.Data, &ae); err != nil {
		return fmt.Errorf("restore result: %w", err)
	}
	return ae.err()
}
