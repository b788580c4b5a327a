package bus

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
)

// storeOnDisk lists the streams a store dir holds (of the global account,
// the only one the engine uses) and tells whether any is encrypted, and
// whether any is not.
func storeOnDisk(storeDir string) (names []string, encrypted, plain bool, err error) {
	dir := filepath.Join(storeDir, server.JetStreamStoreDir, server.DEFAULT_GLOBAL_ACCOUNT, "streams")
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, false, nil
	}
	if err != nil {
		return nil, false, false, fmt.Errorf("bus: read the store %s: %w", dir, err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, e.Name(), server.JetStreamMetaFile)); err != nil {
			continue // never written: nothing to lose
		}
		names = append(names, e.Name())
		if _, err := os.Stat(filepath.Join(dir, e.Name(), server.JetStreamMetaFileKey)); err == nil {
			encrypted = true
		} else {
			plain = true
		}
	}
	return names, encrypted, plain, nil
}

// missingStreams are the names the server did not open.
func (s *Server) missingStreams(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	open := map[string]bool{}
	if info, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true}); err == nil {
		for _, acc := range info.AccountDetails {
			for _, st := range acc.Streams {
				open[st.Name] = true
			}
		}
	}
	var out []string
	for _, n := range names {
		if !open[n] {
			out = append(out, n)
		}
	}
	return out
}
