package bus

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats-server/v2/server/archive"
)

// ErrBackupDamaged is why a backup is refused before anything is
// replaced: it is truncated, altered or not one of the engine's.
var ErrBackupDamaged = errors.New("the backup is damaged")

// checkBackup reads a whole backup and checks every entry; it returns the
// entries' sums.
func checkBackup(r io.Reader) (map[string]string, error) {
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
	if err := checkManifest(man, sums); err != nil {
		return nil, err
	}
	return sums, nil
}

// checkManifest holds the sums of a backup's entries to its manifest.
func checkManifest(man *manifest, sums map[string]string) error {
	if man.V != BackupVersion {
		return fmt.Errorf("the backup's format is v%d, this engine restores v%d: restore it with the engine that wrote it (nothing was changed)", man.V, BackupVersion)
	}
	for n, want := range man.SHA256 {
		switch got, ok := sums[n]; {
		case !ok:
			return damaged("%s is missing", n)
		case got != want:
			return damaged("%s does not match its checksum", n)
		}
	}
	for n := range sums {
		if _, ok := man.SHA256[n]; !ok {
			return damaged("%s is not in %s", n, manifestName)
		}
	}
	return nil
}

// damaged is ErrBackupDamaged, saying why.
func damaged(format string, a ...any) error {
	return fmt.Errorf("%w, nothing was changed: %s", ErrBackupDamaged, fmt.Sprintf(format, a...))
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
