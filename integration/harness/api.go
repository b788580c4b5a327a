package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/deployment-engine/engine/deploy/client"
)

// URL is the engine's API base URL.
func (e *Engine) URL() string { return "http://" + e.Addr }

// Client is the typed API client of the command line, on this engine with
// its token.
func (e *Engine) Client() *client.Client { return client.New(e.URL(), e.Token) }

// Do sends a request with the token; body may be a string, []byte or a
// value to encode as JSON.
func (e *Engine) Do(method, path string, body any) (int, []byte) {
	e.t.Helper()
	code, b, err := e.DoErr(context.Background(), method, path, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return code, b
}

// DoErr is Do that returns transport errors instead of failing the test.
func (e *Engine) DoErr(ctx context.Context, method, path string, body any) (int, []byte, error) {
	return Request(ctx, e.URL(), e.Token, method, path, body, nil)
}

// Request sends method path with token to the API at base and answers the
// status and the whole body. body may be a string, []byte or a value to
// encode as JSON; header adds to the request's headers.
func Request(ctx context.Context, base, token, method, path string, body any, header http.Header) (int, []byte, error) {
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(j)
	}
	resp, err := send(ctx, base, token, method, path, r, header)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// send sends a request with token and the headers given.
func send(ctx context.Context, base, token, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return http.DefaultClient.Do(req)
}

// Events reads deployment id's event stream as the engine sends it, up to
// and including the line that names its "finished" event (its data is not
// read), and answers the status with the text read.
func (e *Engine) Events(ctx context.Context, id string) (int, []byte, error) {
	resp, err := send(ctx, e.URL(), e.Token, "GET", "/deployment-engine/deployments/"+id+"/events", nil, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		buf.WriteString(sc.Text() + "\n")
		if strings.HasPrefix(sc.Text(), "event: finished") {
			break
		}
	}
	return resp.StatusCode, buf.Bytes(), sc.Err()
}
