// Package bus starts the engine's embedded NATS server with JetStream,
// connects services to it, and declares every stream and KV bucket.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
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
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
	auth *auth
}

// StartServer starts the server and waits until it accepts connections.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	opts := &server.Options{
		ServerName:         "deployment-engine",
		JetStream:          true,
		StoreDir:           filepath.Join(o.DataDir, "jetstream"),
		NoSigs:             true,
		MaxPayload:         8 << 20,
		JetStreamMaxMemory: 256 << 20,
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
	return &Server{Server: ns, auth: a}, nil
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

// Dial connects to an external NATS server by URL.
func Dial(url, name string, opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect to %s: %w", url, err)
	}
	return nc, nil
}

type slogAdapter struct{ l *slog.Logger }

func (a *slogAdapter) Noticef(f string, v ...any) { a.l.Info(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Warnf(f string, v ...any)   { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Fatalf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Errorf(f string, v ...any)  { a.l.Error(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Debugf(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a *slogAdapter) Tracef(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
