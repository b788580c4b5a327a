package openapitest

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"sync"
)

// Handler checks every answer next gives, once it has given it whole.
func (c *Checker) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		// The request as it came: the handlers below may rewrite its URL.
		req := r.Clone(r.Context())
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		if err := c.Check(r.Context(), req, status, rec.Header(), rec.body.Bytes(), rec.kept && !rec.cut); err != nil {
			c.report(err)
		}
	})
}

// recorder passes an answer through and keeps up to MaxBody of it when
// its body is checked: JSON or an event stream. Of a file or an archive
// only the status and the content type are.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
	kept   bool
	cut    bool
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		r.kept = checksBody(r.Header().Get("Content-Type"))
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
		return r.Write(b)
	}
	if !r.kept {
		return r.ResponseWriter.Write(b)
	}
	if r.body.Len()+len(b) > MaxBody {
		r.cut = true
	} else {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}

// checksBody tells whether a body of this content type is checked.
func checksBody(contentType string) bool {
	ct, _, _ := mime.ParseMediaType(contentType)
	return ct == "application/json" || ct == "text/event-stream"
}

// Flush keeps a stream flowing through the check.
func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

// Unwrap lets http.ResponseController reach the connection underneath.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Transport checks every answer the client reads through it, once the
// client has read its body to the end or closed it.
func (c *Checker) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := base.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		keep := checksBody(resp.Header.Get("Content-Type"))
		resp.Body = &checkedBody{ReadCloser: resp.Body, cut: !keep, done: func(body []byte, complete bool) {
			if err := c.Check(req.Context(), req, resp.StatusCode, resp.Header, body, complete); err != nil {
				c.report(err)
			}
		}}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// checkedBody keeps what the client reads and has it checked once, at
// the end of the body or its close; a body closed early is incomplete.
type checkedBody struct {
	io.ReadCloser
	buf  bytes.Buffer
	cut  bool
	eof  bool
	once sync.Once
	done func(body []byte, complete bool)
}

func (b *checkedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.cut || b.buf.Len()+n > MaxBody {
		b.cut = true
	} else {
		b.buf.Write(p[:n])
	}
	if err == io.EOF {
		b.eof = true
		b.finish()
	}
	return n, err
}

func (b *checkedBody) Close() error {
	b.finish()
	return b.ReadCloser.Close()
}

func (b *checkedBody) finish() {
	b.once.Do(func() { b.done(b.buf.Bytes(), b.eof && !b.cut) })
}
