package bus

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BackupStreams are the streams a backup holds: the step queue, the event
// stream, the audit trail, every key-value bucket (each a KV_<bucket>
// stream) and the uploaded releases (OBJ_DE_RELEASES: a config restored
// names a release it must find), with their consumers' positions.
func BackupStreams() []string {
	out := []string{StreamSteps, StreamEvents, StreamAudit}
	for _, kv := range []string{KVConfig, KVDeployments, KVScheduler, KVOwners, KVHostKeys, KVNodes, KVEngine} {
		out = append(out, "KV_"+kv)
	}
	return append(out, "OBJ_"+ObjReleases)
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

// BackupVersion is the format of the backups this engine writes, and the
// newest it restores.
const BackupVersion = 1

// manifestName is a backup's last entry: its format version and the
// SHA-256 of every other entry. A backup written before it existed has
// none and is checked by decoding alone.
const manifestName = "MANIFEST.json"

type manifest struct {
	V      int               `json:"v"`
	SHA256 map[string]string `json:"sha256"`
}

// Backup writes a snapshot of every stream of BackupStreams to w, as a tar
// of <stream>.json (config and state) and <stream>.snap (the server's own
// snapshot, messages and consumers), then MANIFEST.json, through the
// JetStream API, so that it works against the embedded server and an
// external one alike. Streams that do not exist are left out; it returns
// the ones written.
func Backup(ctx context.Context, nc *nats.Conn, w io.Writer) ([]string, error) {
	done, _, err := backup(ctx, nc, w)
	return done, err
}

// backup is Backup; it also returns the manifest's sums.
func backup(ctx context.Context, nc *nats.Conn, w io.Writer) ([]string, map[string]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, err
	}
	tw := tar.NewWriter(w)
	put := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	var done []string
	sums := map[string]string{}
	for _, name := range BackupStreams() {
		if _, err := js.Stream(ctx, name); errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		} else if err != nil {
			return done, nil, fmt.Errorf("backup %s: %w", name, err)
		}
		var snap bytes.Buffer
		meta, err := snapshot(ctx, nc, name, &snap)
		if err != nil {
			return done, nil, fmt.Errorf("backup %s: %w", name, err)
		}
		mb, _ := json.Marshal(meta)
		for _, f := range []struct {
			name string
			data []byte
		}{{name + ".json", mb}, {name + ".snap", snap.Bytes()}} {
			sum := sha256.Sum256(f.data)
			sums[f.name] = hex.EncodeToString(sum[:])
			if err := put(f.name, f.data); err != nil {
				return done, nil, err
			}
		}
		done = append(done, name)
	}
	mb, _ := json.Marshal(manifest{V: BackupVersion, SHA256: sums})
	if err := put(manifestName, mb); err != nil {
		return done, nil, err
	}
	return done, sums, tw.Close()
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
