package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// HeaderRequestID names every answer's correlation id. An error's JSON
// body carries it as "id", and the engine's log line about the error (the
// API's, and the service's for an internal error) has it as "id" too.
const HeaderRequestID = "X-Request-Id"

// clientID is a request id a client may choose: short and plain, so that
// it never forges a log line.
var clientID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func newRequestID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// requestID gives each request its id (the client's X-Request-Id when it
// is plain, else a new one), hands it to the bus requests the route makes,
// puts it on the answer, and logs every error answer with it.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(HeaderRequestID)
		if !clientID.MatchString(id) {
			id = newRequestID()
		}
		w.Header().Set(HeaderRequestID, id)
		ew := &errorWriter{ResponseWriter: w, id: id}
		next.ServeHTTP(ew, r.WithContext(kit.WithRequestID(r.Context(), id)))
		if msg, failed := ew.finish(); failed {
			level := slog.LevelInfo // the client's mistake
			if ew.code >= 500 {
				level = slog.LevelError
			}
			s.log.Log(r.Context(), level, "request failed", "id", id, "method", r.Method,
				"path", contract.Clip(r.URL.Path), "code", ew.code, "error", msg)
		}
	})
}

// maxErrorBody bounds an error answer the writer holds to add the id to;
// a larger one goes out as it is.
const maxErrorBody = 1 << 20

// errorWriter passes a successful answer through and holds an error
// answer until the route is done, to add the request's id to its JSON.
type errorWriter struct {
	http.ResponseWriter
	id      string
	code    int
	holding bool
	body    bytes.Buffer
}

func (e *errorWriter) WriteHeader(code int) {
	if e.code != 0 {
		return
	}
	e.code = code
	if code >= 400 {
		e.holding = true
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorWriter) Write(b []byte) (int, error) {
	if e.code == 0 {
		e.WriteHeader(http.StatusOK)
	}
	if !e.holding {
		return e.ResponseWriter.Write(b)
	}
	if e.body.Len()+len(b) > maxErrorBody {
		// Too large to rewrite: send what is held, then the rest as is.
		e.release(e.body.Bytes())
		e.body.Reset()
		return e.ResponseWriter.Write(b)
	}
	return e.body.Write(b)
}

// Flush sends what a successful answer wrote so far; an error answer
// waits for the end of the route.
func (e *errorWriter) Flush() {
	if e.holding {
		return
	}
	if f, ok := e.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection underneath.
func (e *errorWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// release writes the held status and body, and stops holding.
func (e *errorWriter) release(body []byte) {
	e.holding = false
	e.ResponseWriter.WriteHeader(e.code)
	_, _ = e.ResponseWriter.Write(body)
}

// finish sends a held error answer with the id in its JSON and tells what
// the error said; failed is false for a successful answer.
func (e *errorWriter) finish() (msg string, failed bool) {
	if e.code < 400 {
		return "", false
	}
	if !e.holding {
		return "(answer too large to read)", true
	}
	body := e.body.Bytes()
	h := e.Header()
	var eb contract.ErrorBody
	switch {
	case len(bytes.TrimSpace(body)) == 0:
		// An answer with no body (a recovered panic, say) gets the
		// engine's error shape.
		eb.Error = http.StatusText(e.code)
		body = withID(mustJSON(eb), e.id)
		h.Set("Content-Type", "application/json;charset=utf-8")
	case strings.HasPrefix(h.Get("Content-Type"), "application/json"):
		_ = json.Unmarshal(body, &eb)
		body = withID(body, e.id)
	default:
		eb.Error = strings.TrimSpace(string(body))
	}
	h.Del("Content-Length")
	e.release(body)
	return contract.Clip(eb.Error), true
}

// withID sets "id" in a JSON object; anything else is left as it is.
func withID(body []byte, id string) []byte {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil || obj == nil {
		return body
	}
	obj["id"], _ = json.Marshal(id)
	return mustJSON(obj)
}

// mustJSON encodes v as writeJSON does: no HTML escapes, a newline after.
func mustJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return b.Bytes()
}
