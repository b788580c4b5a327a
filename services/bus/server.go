// Package bus is the engine's message bus. It starts the embedded NATS
// server with JetStream (or reaches an external one), connects the services
// to it, and declares every stream and KV bucket they use.
package bus

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	neturl "net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ServerOptions configure the embedded server.
type ServerOptions struct {
	// DataDir holds the JetStream file store (DataDir/jetstream).
	DataDir string
	// Host and Port of a TCP listener for node agents; Port 0 means no
	// listener at all (in-process connections only).
	Host string
	Port int
	// Logger receives the server's own messages.
	Logger *slog.Logger
	// EncryptionKey encrypts the JetStream store at rest (nats-server's
	// own encryption, ChaCha20-Poly1305): every stream and bucket file on
	// disk. A plaintext store is encrypted when first opened with a key;
	// an encrypted one opens only with its key. "" leaves it plaintext.
	EncryptionKey string
	// TLS, when set, is required of every client of the TCP listener
	// (node agents, the observer); in-process connections need none.
	TLS *tls.Config
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
	auth      *auth
	encrypted bool
}

// Encrypted tells whether the store is encrypted at rest.
func (s *Server) Encrypted() bool { return s.encrypted }

// StartServer starts the server and waits until it accepts connections.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	opts := &server.Options{
		ServerName:         "deployment-engine",
		JetStream:          true,
		StoreDir:           filepath.Join(o.DataDir, "jetstream"),
		JetStreamCipher:    server.ChaCha,
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
	}
	storeDir := filepath.Join(o.DataDir, "jetstream")
	onDisk, encrypted, plain, err := storeOnDisk(storeDir)
	if err != nil {
		return nil, err
	}
	if encrypted && o.EncryptionKey == "" {
		return nil, fmt.Errorf("bus: the store in %s is encrypted and no key was given: start the engine with the key it was encrypted with (the engine-key file of that data dir, or DE_ENGINE_KEY_FILE)", storeDir)
	}
	switch {
	case o.EncryptionKey == "":
	case plain && !encrypted:
		// nats-server can encrypt a plaintext store in place, but a store
		// so converted failed to open again here: it stays plaintext.
		if o.Logger != nil {
			o.Logger.Warn("the store was made before encryption and stays unencrypted: its secrets rest in clear on disk. To encrypt it, stop the engine, move the directory aside, start the engine again and post the config again (deployment history is not carried over)", "store", storeDir)
		}
	default:
		opts.JetStreamKey = o.EncryptionKey
	}
	a := &auth{enginePass: randomSecret()}
	// No anonymous client: the engine's own connections present a
	// password made for this run, node agents theirs (see auth).
	opts.CustomClientAuthentication = a
	if o.Port == 0 {
		opts.DontListen = true
	} else {
		opts.Host, opts.Port = o.Host, o.Port
	}
	if o.TLS != nil {
		opts.TLS, opts.TLSConfig, opts.TLSTimeout = true, o.TLS, 5
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: configure NATS server: %w", err)
	}
	if o.Logger != nil {
		ns.SetLoggerV2(&slogAdapter{o.Logger}, false, false, false)
	}
	go ns.Start()
	deadline := 30 * time.Second
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	if !ns.ReadyForConnections(deadline) {
		ns.Shutdown()
		return nil, fmt.Errorf("bus: NATS server not ready after %s (data dir %s)", deadline, o.DataDir)
	}
	if o.Port != 0 && ns.Addr() == nil {
		ns.Shutdown()
		return nil, fmt.Errorf("bus: NATS cannot listen on %s:%d for node agents (is another engine running?)", o.Host, o.Port)
	}
	srv := &Server{Server: ns, auth: a, encrypted: opts.JetStreamKey != ""}
	// A stream that is on disk but did not open (a wrong key) must stop
	// the engine: declaring it again would start it empty.
	if missing := srv.missingStreams(onDisk); len(missing) > 0 {
		srv.Stop()
		return nil, fmt.Errorf("bus: streams %v in %s could not be opened: the store is encrypted with another key than the one given (the engine-key file of that data dir, or DE_ENGINE_KEY_FILE), or damaged; nothing was changed", missing, storeDir)
	}
	return srv, nil
}

// Connect opens an in-process connection: no TCP hop, no credentials.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s.Server), nats.Name(name), nats.MaxReconnects(-1),
		nats.UserInfo(EngineUser, s.auth.enginePass))
	if err != nil {
		return nil, fmt.Errorf("bus: connect in-process: %w", err)
	}
	return nc, nil
}

// Stop drains clients and shuts the server down, flushing the store.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Dial connects to an external NATS server, or cluster, by URL: a
// comma-separated list names several servers, and the client fails over
// between them and those the cluster announces. A user and password in the
// first URL are used for every server, the announced ones included.
func Dial(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	if u, err := neturl.Parse(strings.TrimSpace(strings.Split(url, ",")[0])); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok {
			base = append(base, nats.UserInfo(u.User.Username(), pw))
		}
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect to %s: %w", redactURL(url), err)
	}
	return nc, nil
}

// redactURL hides the passwords of a URL list, for errors and logs.
func redactURL(url string) string {
	parts := strings.Split(url, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(f string, v ...any) { a.l.Info(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Errorf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
