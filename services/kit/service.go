package kit

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/subject"
)

// endpointLimit bounds the requests one endpoint runs at once.
const endpointLimit = 64

// Service is the skeleton every service of the engine stands on: its
// logger, its micro service on the bus and the Handlers that run its
// endpoints for as long as it lives.
type Service struct {
	name     string
	log      *slog.Logger
	handlers *Handlers
	micro    micro.Service // nil until Serve
}

// NewService is the service name, logging to log (slog.Default when nil)
// under "service"=name. It answers nothing until Serve, but its Go runs
// work at once.
func NewService(log *slog.Logger, name string) *Service {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("service", name)
	return &Service{name: name, log: log, handlers: NewHandlers(log)}
}

// Log is the service's logger.
func (s *Service) Log() *slog.Logger { return s.log }

// Serve adds the service to the bus and answers each subject of eps with
// its handler, each request in a goroutine of its own (see Concurrent), so
// that a request waiting on a slow node holds up no other. After an error
// Stop still undoes what was added.
func (s *Service) Serve(nc *nats.Conn, description string, eps map[string]Handler) error {
	svc, err := micro.AddService(nc, micro.Config{Name: s.name, Version: "1.0.0", Description: description})
	if err != nil {
		return fmt.Errorf("%s: add service: %w", s.name, err)
	}
	s.micro = svc
	for subj, h := range eps {
		if err := svc.AddEndpoint(subject.EndpointName(subj), Concurrent(endpointLimit, s.handlers.Endpoint(h)), micro.WithEndpointSubject(subj)); err != nil {
			return fmt.Errorf("%s: endpoint %s: %w", s.name, subj, err)
		}
	}
	return nil
}

// Go runs fn as the service's work that no request waits for (see
// Handlers.Go).
func (s *Service) Go(fn func(ctx context.Context)) bool { return s.handlers.Go(fn) }

// Stop takes the service off the bus, ends the ctx of its handlers and of
// its Go work, and waits up to wait for them, logging when some still run.
// A second Stop finds nothing left to wait for.
func (s *Service) Stop(wait time.Duration) {
	if s.micro != nil {
		_ = s.micro.Stop()
	}
	if !s.handlers.Stop(wait) {
		s.log.Warn("requests still run after the service's stop", "waited", wait)
	}
}

// Default gives an option its default def when it is not above its zero
// value: left unset, or a count or duration below zero that means nothing.
// For a string that is the empty string.
func Default[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}
