package installer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

const maxTransferTries = 3

// upload puts f on the node: skipped when the node's copy already has its
// checksum and mode; else streamed to a temporary file whose size and
// SHA-256 the node computes, retried on a mismatch (the manual's "scp not
// finish completely"), then moved into place.
func (i *Installer) upload(ctx context.Context, c nodeConn, f contract.StepFile) (sent bool, err error) {
	if err := checkPath(f.Path); err != nil {
		return false, err
	}
	open, size, sum, err := source(f)
	if err != nil {
		return false, err
	}
	mode := fileMode(f)
	have, _ := output(ctx, c, fmt.Sprintf(`[ -f '%[1]s' ] && printf '%%s %%s\n' "$(sha256sum < '%[1]s' | cut -d' ' -f1)" "$(stat -c %%a '%[1]s')"`, f.Path), nil)
	if strings.TrimSpace(string(have)) == sum+" "+mode {
		return false, nil
	}
	tmp := f.Path + ".de-tmp"
	var last error
	for try := 1; try <= maxTransferTries; try++ {
		r, err := open()
		if err != nil {
			return false, err
		}
		out, err := output(ctx, c, fmt.Sprintf(`set -e; mkdir -p '%s'; umask 077; cat > '%s'; printf '%%s %%s\n' "$(stat -c %%s '%[2]s')" "$(sha256sum < '%[2]s' | cut -d' ' -f1)"`, path.Dir(f.Path), tmp), r)
		if rc, ok := r.(io.Closer); ok {
			rc.Close()
		}
		if err != nil {
			last = fmt.Errorf("send %s: %w", f.Path, err)
			if ctx.Err() != nil {
				return false, last
			}
			continue
		}
		if got := strings.TrimSpace(string(out)); got != fmt.Sprintf("%d %s", size, sum) {
			last = fmt.Errorf("transfer of %s incomplete (node has %q, want %d bytes sha256 %s)", f.Path, got, size, sum)
			i.log.Warn("transfer incomplete; sending again", "file", f.Path, "try", try)
			continue
		}
		if _, err := output(ctx, c, fmt.Sprintf(`chmod %s '%s' && mv -f '%[2]s' '%s'`, mode, tmp, f.Path), nil); err != nil {
			return false, fmt.Errorf("install %s: %w", f.Path, err)
		}
		i.metrics.bytes.Add(float64(size))
		return true, nil
	}
	return false, last
}

// source opens a step file's content, inline or from this machine.
func source(f contract.StepFile) (func() (io.Reader, error), int64, string, error) {
	if f.LocalPath == "" {
		sum := sha256.Sum256(f.Content)
		s := hex.EncodeToString(sum[:])
		if f.SHA256 != "" && f.SHA256 != s {
			return nil, 0, "", permanent{fmt.Errorf("%s: content does not match its checksum", f.Path)}
		}
		return func() (io.Reader, error) { return bytes.NewReader(f.Content), nil }, int64(len(f.Content)), s, nil
	}
	fh, err := os.Open(f.LocalPath)
	if err != nil {
		return nil, 0, "", permanent{fmt.Errorf("read %s for %s: %w", f.LocalPath, f.Path, err)}
	}
	h := sha256.New()
	size, err := io.Copy(h, fh)
	fh.Close()
	if err != nil {
		return nil, 0, "", fmt.Errorf("read %s: %w", f.LocalPath, err)
	}
	return func() (io.Reader, error) { return os.Open(f.LocalPath) }, size, hex.EncodeToString(h.Sum(nil)), nil
}
