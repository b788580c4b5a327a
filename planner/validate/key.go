package validate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/services/contract"
)

// maxKeyFile bounds what is read of a key file: a private key is a few KiB.
const maxKeyFile = 64 << 10

// Key checks the key property: the PEM text of an SSH private key, or the
// absolute path of a regular file on the control machine that holds one.
// It answers a problem, or nil. The problem names the path but never
// quotes the file or the parser's words about it, so pointing key at a
// file that is not a key (/etc/shadow) tells nothing of what is in it.
func Key(key string) *contract.Problem { return KeyAt("properties.key", key) }

// KeyAt checks a key property at path (properties.key,
// properties.gateway.key) as Key does.
func KeyAt(path, key string) *contract.Problem {
	if key == "" {
		return nil
	}
	bad := func(reason string) *contract.Problem {
		return &contract.Problem{Path: path, Reason: reason}
	}
	pem := []byte(key)
	where := "the key property"
	if !strings.Contains(key, "PRIVATE KEY") {
		if !strings.HasPrefix(key, "/") {
			return bad("must be an absolute path on the control machine or the PEM text of an SSH private key")
		}
		where = contract.Clip(key)
		b, err := readKeyFile(key)
		if err != nil {
			return bad(err.Error())
		}
		pem = b
	}
	if _, err := ssh.ParseRawPrivateKey(pem); err != nil {
		var pass *ssh.PassphraseMissingError
		if errors.As(err, &pass) {
			return bad(where + " is a passphrase-protected key: give one without a passphrase")
		}
		return bad(where + " is not an SSH private key (PEM or OpenSSH format)")
	}
	return nil
}

func readKeyFile(path string) ([]byte, error) {
	name := contract.Clip(path)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s does not exist on the control machine", name)
	case err != nil:
		return nil, fmt.Errorf("%s cannot be read on the control machine", name)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file", name)
	case fi.Size() > maxKeyFile:
		return nil, fmt.Errorf("%s is not an SSH private key (too large)", name)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s cannot be read on the control machine", name)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil || len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s cannot be read as a key", name)
	}
	return b, nil
}

// KeyProblems answers the key properties' problems, if any: the nodes'
// key, each node's own and the gateway's.
func KeyProblems(cfg contract.Config) []contract.Problem {
	var out []contract.Problem
	if pr := Key(cfg.Properties.Key); pr != nil {
		out = append(out, *pr)
	}
	if g := cfg.Properties.Gateway; g != nil {
		if pr := KeyAt("properties.gateway.key", g.Key); pr != nil {
			out = append(out, *pr)
		}
	}
	for _, ip := range contract.SortedKeys(cfg.Properties.NodeKeys) {
		if pr := KeyAt("properties.node_keys."+ip, cfg.Properties.NodeKeys[ip]); pr != nil {
			out = append(out, *pr)
		}
	}
	return out
}
