package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
)

// trustCmd takes the CA certificates the engine sends while its agents' CA
// rotates (nodeexec.Trust): when the engine sealed them, for this node,
// fresh and not seen before, the agent writes them into its config file
// (so that a restart trusts them too) and verifies the engine's NATS with
// them from its next handshake on. The connection it has stays up.
func (a *Agent) trustCmd(m *nats.Msg) {
	reply := func(err error) {
		r := nodeexec.TrustReply{V: contract.Version, Version: a.o.Version}
		if err != nil {
			r.Error = err.Error()
		}
		b, _ := json.Marshal(r)
		_ = m.Respond(b)
	}
	t, err := a.admitTrust(m.Data)
	if err == nil {
		err = a.setTrust(t.CA)
	}
	if err != nil {
		a.log.Warn("refused a trust command", "why", err)
		reply(err)
		return
	}
	a.log.Info("trusting the CA certificates the engine sent", "serials", caSerials(t.CA))
	reply(nil)
}

// admitTrust checks a sealed trust command: its signature first, so that
// nothing else of it is read unless the engine sent it.
func (a *Agent) admitTrust(msg []byte) (nodeexec.Trust, error) {
	var t nodeexec.Trust
	body, err := nodeexec.Open(a.trustKey, msg)
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return t, fmt.Errorf("bad trust command: %w", err)
	}
	switch {
	case t.V > contract.Version:
		return t, fmt.Errorf("trust command version %d is newer than this agent's %d", t.V, contract.Version)
	case t.Node != a.cfg.IP:
		return t, fmt.Errorf("the trust command is for node %q, not %s", contract.Clip(t.Node), a.cfg.IP)
	case a.trust == nil:
		return t, errors.New("this agent reaches the engine's NATS without TLS: it has no CA to change")
	}
	if _, err := nodeexec.ParseCAs(t.CA); err != nil {
		return t, err
	}
	if err := a.guard.Check(t.Nonce, time.UnixMilli(t.Time), time.Now()); err != nil {
		return t, err
	}
	return t, nil
}

// setTrust keeps bundle in the config file, then trusts it. The agent's
// own write is no deployment's: it does not restart the agent, unless a
// deployment had changed the config before (which the agent then reads
// again, with bundle in it).
func (a *Agent) setTrust(bundle string) error {
	if a.o.ConfigFile != "" {
		a.fpMu.Lock()
		defer a.fpMu.Unlock()
		unchanged := fingerprint(a.o) == a.fp
		if err := rewriteCA(a.o.ConfigFile, bundle); err != nil {
			return err
		}
		if unchanged {
			a.fp = fingerprint(a.o)
		}
	}
	return a.trust.set(bundle)
}

// rewriteCA sets the ca of the agent config at path, atomically: a crash
// leaves the old file or the new. It is written as the deployment's agent
// step writes it, so that the step's next run leaves it as it is.
func rewriteCA(path, bundle string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read the agent's config: %w", err)
	}
	var c contract.AgentConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("the agent's config %s: %w", path, err)
	}
	c.CA = bundle
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".agent-config-*")
	if err != nil {
		return fmt.Errorf("write the agent's config: %w", err)
	}
	defer os.Remove(tmp.Name()) // once renamed, there is nothing to remove
	_, err = tmp.Write(append(out, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write the agent's config: %w", err)
	}
	return nil
}

// caSerials are the serials of the CAs of a bundle admitTrust checked.
func caSerials(bundle string) []string {
	cas, _ := nodeexec.ParseCAs(bundle)
	out := make([]string, len(cas))
	for i, c := range cas {
		out[i] = c.SerialNumber.Text(16)
	}
	return out
}
