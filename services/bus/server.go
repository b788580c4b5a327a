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
	// Users may connect over TCP; each with its own permissions. When
	// empty and a listener is on, nothing but in-process clients may connect.
	Users []*server.User
	// Trace logs the server's own messages through slog.
	Logger *slog.Logger
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
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
	if o.Port == 0 {
		opts.DontListen = true
	} else {
		opts.Host, opts.Port = o.Host, o.Port
		// Nobody connects over TCP without one of the declared users; the
		// in-process connection of the engine's own services is the
		// system's own and needs no password.
		opts.Users = o.Users
		if len(opts.Users) == 0 {
			opts.Users = []*server.User{{Username: "nobody", Password: randomSecret(), Permissions: &server.Permissions{Publish: &server.SubjectPermission{Deny: []string{">"}}, Subscribe: &server.SubjectPermission{Deny: []string{">"}}}}}
		}
		opts.NoAuthUser = ""
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
	return &Server{ns}, nil
}

// Connect opens an in-process connection: no TCP hop, no credentials.
func (s *Server) Connect(name string) (*nats.Conn, error) {
	nc, err := nats.Connect("", nats.InProcessServer(s.Server), nats.Name(name), nats.MaxReconnects(-1))
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
