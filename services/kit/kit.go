// Package kit holds the pieces every service of the engine is built from:
// its skeleton on the bus (Service), endpoints whose replies carry an
// HTTP-like code, the matching client call (Request).
package kit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/services/contract"
)

// HeaderCode carries the reply's code on a successful reply; errors use
// micro's own Nats-Service-Error-Code header.
const HeaderCode = "De-Code"

// Error is a failed command: Code is what the api answers (400, 403, ...).
type Error struct {
	Code     int
	Msg      string
	Problems []contract.Problem
}

func (e *Error) Error() string { return e.Msg }

// Errorf builds an *Error.
func Errorf(code int, format string, a ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, a...)}
}

// HeaderRequestID carries the id of the API request a command serves, so
// that a service's log line about it names the id the client was given.
const HeaderRequestID = "De-Request-Id"

// HeaderDeadline carries how many milliseconds the requester still waits
// for the answer: the handler's ctx ends then, so that no handler works on
// for a caller that has gone.
const HeaderDeadline = "De-Deadline-Ms"

// MaxHandlerTime bounds a handler whose requester named no deadline.
const MaxHandlerTime = 10 * time.Minute

// handlerContext is the ctx a handler of req runs with: parent's (the
// service's life), the request's id and its requester's deadline
// (MaxHandlerTime when it named none).
func handlerContext(parent context.Context, req micro.Request) (context.Context, context.CancelFunc) {
	ctx := parent
	if id := req.Headers().Get(HeaderRequestID); id != "" {
		ctx = WithRequestID(ctx, id)
	}
	wait := MaxHandlerTime
	if ms, err := strconv.ParseInt(req.Headers().Get(HeaderDeadline), 10, 64); err == nil {
		wait = min(time.Duration(ms)*time.Millisecond, MaxHandlerTime)
	}
	return context.WithTimeout(ctx, wait)
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying a request's correlation id: Request
// sends it along, and Endpoint hands it to the handler's ctx.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the correlation id ctx carries, "" when none.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Handler answers one command: it returns the reply's code and body, or an
// error (an *Error keeps its code, anything else is a 500 whose text is
// logged but not sent, so internals and secrets stay in).
type Handler func(ctx context.Context, req micro.Request) (int, any, error)

// RawJSON is a reply body a handler encoded itself: Endpoint sends it as
// it is, without encoding (and so scanning) it again.
type RawJSON []byte

// Endpoint adapts h for micro, with the service's logger. The handler's
// ctx ends with its requester's wait (see HeaderDeadline), never with the
// service: a service that stops runs its endpoints under Handlers.
func Endpoint(log *slog.Logger, h Handler) micro.Handler {
	return NewHandlers(log).Endpoint(h)
}

// Handlers runs the handlers of one service's endpoints, and the work they
// start, for as long as the service lives: Stop ends their ctx and waits
// for those in flight.
type Handlers struct {
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex // orders a handler's start against Stop
	stopped  bool
	inFlight sync.WaitGroup
}

// NewHandlers is the handlers of a service that logs to log.
func NewHandlers(log *slog.Logger) *Handlers {
	ctx, cancel := context.WithCancel(context.Background())
	return &Handlers{log: log, ctx: ctx, cancel: cancel}
}

// errStopping answers a request that arrives while its service stops.
var errStopping = &Error{Code: 503, Msg: "the service is stopping; try again"}

// enter counts a handler or a Go in, unless the service stops.
func (hs *Handlers) enter() bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.stopped {
		return false
	}
	hs.inFlight.Add(1)
	return true
}

// Stop ends the ctx of every handler, refuses (503) the requests still
// delivered, and waits up to wait for the handlers in flight to return. It
// reports whether they all did.
func (hs *Handlers) Stop(wait time.Duration) bool {
	hs.mu.Lock()
	hs.stopped = true
	hs.mu.Unlock()
	hs.cancel()
	done := make(chan struct{})
	go func() {
		hs.inFlight.Wait()
		close(done)
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// Go runs fn on a goroutine of its own as work of the service that no
// request waits for: its ctx ends with Stop, which waits for it as for a
// handler. Once the service stops, it runs nothing and reports false.
func (hs *Handlers) Go(fn func(ctx context.Context)) bool {
	if !hs.enter() {
		return false
	}
	go func() {
		defer hs.inFlight.Done()
		fn(hs.ctx)
	}()
	return true
}

// Endpoint adapts h for micro. The handler's ctx ends with its requester's
// wait (see HeaderDeadline) or when hs stops, whichever comes first.
func (hs *Handlers) Endpoint(h Handler) micro.Handler {
	log := hs.log
	return micro.HandlerFunc(func(req micro.Request) {
		if !hs.enter() {
			replyError(log, req, errStopping)
			return
		}
		defer hs.inFlight.Done()
		ctx, cancel := handlerContext(hs.ctx, req)
		defer cancel()
		id := RequestID(ctx)
		code, body, err := h(ctx, req)
		if err != nil {
			var e *Error
			switch {
			case errors.As(err, &e):
			case hs.ctx.Err() != nil:
				// Cut short by Stop: not the handler's failure.
				e = errStopping
			case Unavailable(err):
				log.Warn("command failed: the store is unavailable", "subject", req.Subject(), "id", id, "err", err)
				e = &Error{Code: 503, Msg: UnavailableMsg}
			default:
				log.Error("command failed", "subject", req.Subject(), "id", id, "err", err)
				e = &Error{Code: 500, Msg: "internal error; the engine's log has the details"}
			}
			replyError(log, req, e)
			return
		}
		data, merr := encodeBody(body)
		if merr != nil {
			log.Error("encode reply", "subject", req.Subject(), "err", merr)
			_ = req.Error("500", "internal error", nil)
			return
		}
		if rerr := req.Respond(data, micro.WithHeaders(micro.Headers{HeaderCode: []string{strconv.Itoa(code)}})); rerr != nil {
			log.Warn("reply failed", "subject", req.Subject(), "err", rerr)
		}
	})
}

// replyError sends e as req's answer.
func replyError(log *slog.Logger, req micro.Request, e *Error) {
	// Problems name the input they are about: each quotes at most
	// contract.ClipMax bytes of it.
	problems := make([]contract.Problem, len(e.Problems))
	for i, p := range e.Problems {
		problems[i] = contract.ClipProblem(p)
	}
	if len(problems) == 0 {
		problems = nil
	}
	data, _ := json.Marshal(contract.ErrorBody{Error: e.Msg, Problems: problems})
	if err := req.Error(strconv.Itoa(e.Code), e.Msg, data); err != nil {
		log.Warn("reply failed", "subject", req.Subject(), "err", err)
	}
}

func encodeBody(body any) ([]byte, error) {
	if raw, ok := body.(RawJSON); ok {
		return raw, nil
	}
	return json.Marshal(body)
}

// Reply is a command's answer as a client sees it.
type Reply struct {
	Code int
	Body []byte
}

// Request sends a command and waits for its reply. A reply that carries an
// error comes back as a Reply with its code and ErrorBody, not as err; err is
// for the bus itself (no service answering, timeout).
func Request(ctx context.Context, nc *nats.Conn, subj string, body any) (Reply, error) {
	var data []byte
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			return Reply{}, fmt.Errorf("encode %s request: %w", subj, err)
		}
	}
	out := nats.NewMsg(subj)
	out.Data = data
	if id := RequestID(ctx); id != "" {
		out.Header.Set(HeaderRequestID, id)
	}
	if d, ok := ctx.Deadline(); ok {
		out.Header.Set(HeaderDeadline, strconv.FormatInt(time.Until(d).Milliseconds(), 10))
	}
	msg, err := nc.RequestMsgWithContext(ctx, out)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return Reply{}, fmt.Errorf("no service answers %s: %w", subj, err)
		}
		return Reply{}, fmt.Errorf("request %s: %w", subj, err)
	}
	if c := msg.Header.Get(micro.ErrorCodeHeader); c != "" {
		code, err := strconv.Atoi(c)
		if err != nil || code < 400 || code > 599 {
			code = 500
		}
		return Reply{Code: code, Body: msg.Data}, nil
	}
	code := 200
	if c := msg.Header.Get(HeaderCode); c != "" {
		if n, err := strconv.Atoi(c); err == nil {
			code = n
		}
	}
	return Reply{Code: code, Body: msg.Data}, nil
}

// Decode unmarshals a command's body into v, answering 400 on bad JSON.
func Decode(req micro.Request, v any) error {
	if err := json.Unmarshal(req.Data(), v); err != nil {
		return &Error{Code: 400, Msg: "bad request: " + err.Error()}
	}
	return nil
}
