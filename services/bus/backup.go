package bus

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats-server/v2/server/archive"
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

// ErrBackupDamaged is why a backup is refused before anything is
// replaced: it is truncated, altered or not one of the engine's.
var ErrBackupDamaged = errors.New("the backup is damaged")

// Restore puts back every stream of a backup written by Backup, replacing
// a stream of the same name: all of them or none. It returns the streams
// restored.
//
// The whole backup is read and checked first (each entry's SHA-256 against
// the manifest and its format version, every snapshot decoded to its end,
// each stream named as its entry): a damaged one is refused with
// ErrBackupDamaged and nothing changed. Only then are the current streams
// the backup holds snapshotted into a file in undoDir (os.TempDir() when
// ""), and replaced one by one; when one fails, every stream touched is
// put back from that snapshot, and one the store did not have is removed.
// JetStream restores a snapshot only under the name it was taken with, and
// cannot rename a stream, so a backup cannot be restored beside the live
// streams and swapped in. The undo file is removed at the end, kept only
// when putting it back failed too (the error names it). An engine running
// on the store meanwhile loses what it wrote after the snapshot.
func Restore(ctx context.Context, nc *nats.Conn, r io.ReadSeeker, undoDir string) ([]string, error) {
	sums, err := checkBackup(r)
	if err != nil {
		return nil, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("read backup: %w", err)
	}
	undo, err := os.CreateTemp(undoDir, "restore-undo-*.tar")
	if err != nil {
		return nil, fmt.Errorf("keep the current streams before restoring: %w", err)
	}
	keep := false
	defer func() {
		undo.Close()
		if !keep {
			os.Remove(undo.Name())
		}
	}()
	had, undoSums, err := backup(ctx, nc, undo)
	if err != nil {
		return nil, fmt.Errorf("keep the current streams before restoring (nothing was changed): %w", err)
	}
	var touched []string
	done, err := replace(ctx, nc, r, sums, nil, func(name string) { touched = append(touched, name) })
	if err == nil {
		return done, nil
	}
	// Put back what was touched, even when ctx has ended.
	if rerr := putBack(context.WithoutCancel(ctx), nc, undo, had, undoSums, touched); rerr != nil {
		keep = true
		return nil, fmt.Errorf("%w; putting the previous streams back failed too: %v; they are kept in %s (restore that file)", err, rerr, undo.Name())
	}
	return nil, fmt.Errorf("%w; nothing was changed: the previous streams were put back", err)
}

// checkBackup reads a whole backup and checks every entry; it returns the
// entries' sums.
func checkBackup(r io.Reader) (map[string]string, error) {
	damaged := func(format string, a ...any) error {
		return fmt.Errorf("%w, nothing was changed: %s", ErrBackupDamaged, fmt.Sprintf(format, a...))
	}
	tr := tar.NewReader(r)
	sums := map[string]string{}
	var man *manifest
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, damaged("%v", err)
		}
		if man != nil {
			return nil, damaged("%s after %s", h.Name, manifestName)
		}
		if _, dup := sums[h.Name]; dup {
			return nil, damaged("%s twice", h.Name)
		}
		if h.Name == manifestName {
			man = &manifest{}
			if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(man); err != nil {
				return nil, damaged("%s: %v", h.Name, err)
			}
			continue
		}
		name, kind := entry(h.Name)
		if name == "" {
			return nil, damaged("%q is not a stream of the engine's", h.Name)
		}
		hash := sha256.New()
		body := io.TeeReader(tr, hash)
		switch {
		case kind == ".json":
			_, err = readMeta(body, name)
		case sums[name+".json"] == "":
			err = fmt.Errorf("comes before its %s.json", name)
		default:
			err = checkSnapshot(body, name)
		}
		if err == nil {
			_, err = io.Copy(io.Discard, body)
		}
		if err != nil {
			return nil, damaged("%s: %v", h.Name, err)
		}
		sums[h.Name] = hex.EncodeToString(hash.Sum(nil))
	}
	if len(sums) == 0 {
		return nil, damaged("it holds no stream")
	}
	for n := range sums {
		if name, kind := entry(n); kind == ".json" && sums[name+".snap"] == "" {
			return nil, damaged("%s has no %s.snap", n, name)
		}
	}
	if man == nil {
		return sums, nil
	}
	if man.V != BackupVersion {
		return nil, fmt.Errorf("the backup's format is v%d, this engine restores v%d: restore it with the engine that wrote it (nothing was changed)", man.V, BackupVersion)
	}
	for n, want := range man.SHA256 {
		switch got, ok := sums[n]; {
		case !ok:
			return nil, damaged("%s is missing", n)
		case got != want:
			return nil, damaged("%s does not match its checksum", n)
		}
	}
	for n := range sums {
		if _, ok := man.SHA256[n]; !ok {
			return nil, damaged("%s is not in %s", n, manifestName)
		}
	}
	return sums, nil
}

// entry splits a backup entry's name into its stream and kind (".json" or
// ".snap"); name is "" when it is not one of the engine's streams.
func entry(file string) (name, kind string) {
	for _, ext := range []string{".json", ".snap"} {
		if n, ok := strings.CutSuffix(file, ext); ok && slices.Contains(BackupStreams(), n) {
			return n, ext
		}
	}
	return "", ""
}

// readMeta decodes a stream's .json entry, which must name the stream.
func readMeta(r io.Reader, name string) (streamMeta, error) {
	var m streamMeta
	if err := json.NewDecoder(io.LimitReader(r, 1<<20)).Decode(&m); err != nil {
		return m, err
	}
	var cfg struct {
		Name string `json:"name"`
	}
	var state map[string]any
	if err := json.Unmarshal(m.Config, &cfg); err != nil || cfg.Name != name {
		return m, fmt.Errorf("its config is not the stream %s's", name)
	}
	if err := json.Unmarshal(m.State, &state); err != nil || state == nil {
		return m, errors.New("no stream state")
	}
	return m, nil
}

// checkSnapshot decodes a server snapshot to its end: S2 (whose chunks
// carry a CRC) around the server's archive (NATSARC1: state.json, the
// messages, the consumers, an end marker) or, from servers before 2.14, a
// tar whose meta.inf names the stream.
func checkSnapshot(r io.Reader, name string) error {
	zr := bufio.NewReader(s2.NewReader(r))
	magic, err := zr.Peek(len(archive.MagicBytes))
	if err != nil {
		return err
	}
	if string(magic) == archive.MagicBytes {
		err = checkArchive(zr)
	} else {
		err = checkTar(zr, name)
	}
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, zr)
	return err
}

// checkArchive reads a NATSARC1 snapshot to its end marker.
func checkArchive(r io.Reader) error {
	ar := archive.NewReader(r)
	for i := 0; ; i++ {
		h, err := ar.Next()
		if err != nil {
			return fmt.Errorf("the snapshot ends before its end marker: %w", err)
		}
		switch {
		case h.Name == "" && h.HeaderSize+h.PayloadSize == 0:
			if _, err := ar.Next(); !errors.Is(err, io.EOF) {
				return errors.New("the snapshot goes on after its end marker")
			}
			return nil
		case i == 0 && h.Name != "state.json":
			return errors.New("the snapshot does not begin with state.json")
		case i == 0 || strings.HasPrefix(h.Name, "consumers/"):
			var v map[string]any
			if err := json.NewDecoder(ar).Decode(&v); err != nil {
				return fmt.Errorf("snapshot %s: %w", h.Name, err)
			}
		}
		if _, err := io.Copy(io.Discard, ar); err != nil {
			return err
		}
	}
}

// checkTar reads a tar snapshot; its meta.inf names the stream, and a
// snapshot the server could not finish carries errors.txt.
func checkTar(r io.Reader, name string) error {
	tr := tar.NewReader(r)
	named := false
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch h.Name {
		case "errors.txt":
			return errors.New("the server could not finish the snapshot")
		case "meta.inf":
			var cfg struct {
				Name string `json:"name"`
			}
			if err := json.NewDecoder(io.LimitReader(tr, 16<<20)).Decode(&cfg); err != nil || cfg.Name != name {
				return fmt.Errorf("its snapshot is not the stream %s's", name)
			}
			named = true
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			return err
		}
	}
	if !named {
		return errors.New("the snapshot has no meta.inf")
	}
	return nil
}

// replace deletes and restores each stream of backup r (only those in
// only, when it is not nil), checking each entry against sums. touch is
// told of a stream before it is deleted.
func replace(ctx context.Context, nc *nats.Conn, r io.Reader, sums map[string]string, only map[string]bool, touch func(string)) ([]string, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	metas := map[string]streamMeta{}
	var done []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return done, nil
		}
		if err != nil {
			return done, fmt.Errorf("read backup: %w", err)
		}
		name, kind := entry(h.Name)
		if name == "" || (only != nil && !only[name]) {
			continue
		}
		hash := sha256.New()
		body := io.TeeReader(tr, hash)
		if kind == ".json" {
			m, err := readMeta(body, name)
			if err == nil {
				_, err = io.Copy(io.Discard, body)
			}
			if err == nil && hex.EncodeToString(hash.Sum(nil)) != sums[h.Name] {
				err = errors.New("changed since it was checked")
			}
			if err != nil {
				return done, fmt.Errorf("read backup %s: %w", h.Name, err)
			}
			metas[name] = m
			continue
		}
		touch(name)
		if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return done, fmt.Errorf("restore %s: remove the current stream: %w", name, err)
		}
		if err := restore(ctx, nc, name, metas[name], body); err != nil {
			return done, fmt.Errorf("restore %s: %w", name, err)
		}
		if hex.EncodeToString(hash.Sum(nil)) != sums[h.Name] {
			return done, fmt.Errorf("restore %s: the backup changed since it was checked", name)
		}
		done = append(done, name)
	}
}

// putBack restores the streams touched from the undo backup; one the
// store did not have before is removed.
func putBack(ctx context.Context, nc *nats.Conn, undo io.ReadSeeker, had []string, sums map[string]string, touched []string) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	only := map[string]bool{}
	for _, name := range touched {
		if slices.Contains(had, name) {
			only[name] = true
		} else if err := js.DeleteStream(ctx, name); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if _, err := undo.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = replace(ctx, nc, undo, sums, only, func(string) {})
	return err
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
