// Package client talks to the engine's HTTP API: the library behind the
// command-line client. Every method answers the decoded body and the raw
// JSON (for --json), or an error: *APIError when the engine answered with an
// error status, *UnreachableError when it could not be reached at all.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// DefaultServer is where the engine listens unless DE_SERVER says otherwise.
const DefaultServer = "http://127.0.0.1:50000"

// Client is one engine's API.
type Client struct {
	// Server is the engine's base URL, e.g. http://127.0.0.1:50000.
	Server string
	// Token is sent as "Authorization: Bearer <token>"; empty sends none.
	Token string
	// HTTP does the requests; nil uses a client without an overall timeout
	// (event streams last as long as a deployment).
	HTTP *http.Client
	// Cluster, when set and not the default cluster, is the named cluster
	// every route acts on: its routes are the manual's below
	// /deployment-engine/clusters/<name>/.
	Cluster string
}

// route is the path of a request on c's cluster.
func (c *Client) route(path string) string {
	rest, ok := strings.CutPrefix(path, base+"/")
	if !ok || c.Cluster == "" || c.Cluster == contract.DefaultCluster || rest == "clusters" || strings.HasPrefix(rest, "clusters/") {
		return path
	}
	return base + "/clusters/" + url.PathEscape(c.Cluster) + "/" + rest
}

// New returns a client for server (DefaultServer when empty).
func New(server, token string) *Client {
	if server == "" {
		server = DefaultServer
	}
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	return &Client{Server: strings.TrimRight(server, "/"), Token: token}
}

// FromEnv returns a client for DE_SERVER (default DefaultServer) with the
// token of DE_API_TOKEN or, failing that, <dataDir>/api-token.
func FromEnv(dataDir string) (*Client, error) {
	tok, err := Token(dataDir)
	if err != nil {
		return nil, err
	}
	c := New(os.Getenv("DE_SERVER"), tok)
	if strings.HasPrefix(c.Server, "https://") {
		hc, err := pinnedClient(dataDir)
		if err != nil {
			return nil, err
		}
		c.HTTP = hc
	}
	return c, nil
}

// pinnedClient trusts the engine's certificate: DE_CA_FILE, or the pair
// `serve --tls auto` made in <dataDir>/tls, when either is there; the
// system's roots otherwise.
func pinnedClient(dataDir string) (*http.Client, error) {
	if dataDir == "" {
		dataDir = "./data"
	}
	path := strings.TrimSpace(os.Getenv("DE_CA_FILE"))
	if path == "" {
		path = filepath.Join(dataDir, "tls", "cert.pem")
		if _, err := os.Stat(path); err != nil {
			return nil, nil
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("the engine's certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("the engine's certificate: %s holds no PEM certificate", path)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr}, nil
}

// Token is DE_API_TOKEN or, failing that, the content of
// <dataDir>/api-token (dataDir defaults to ./data).
func Token(dataDir string) (string, error) {
	if t := strings.TrimSpace(os.Getenv("DE_API_TOKEN")); t != "" {
		return t, nil
	}
	if dataDir == "" {
		dataDir = "./data"
	}
	path := filepath.Join(dataDir, "api-token")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", &TokenError{Path: path, Err: err}
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", &TokenError{Path: path, Err: errors.New("the file is empty")}
	}
	return t, nil
}

// TokenError says no API token was found.
type TokenError struct {
	Path string
	Err  error
}

func (e *TokenError) Error() string {
	return fmt.Sprintf("no API token: DE_API_TOKEN is not set and %s cannot be read (%v); set DE_API_TOKEN or pass --data DIR", e.Path, e.Err)
}

func (e *TokenError) Unwrap() error { return e.Err }

// APIError is an error status from the engine, with its JSON error body.
type APIError struct {
	Method, Path string
	Status       int
	Message      string
	Problems     []contract.Problem
	// RequestID is the engine's correlation id of the failed request: its
	// log line about the error has the same.
	RequestID string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, msg)
}

// Unauthorized tells whether the engine refused the token.
func (e *APIError) Unauthorized() bool { return e.Status == http.StatusUnauthorized }

// UnreachableError says the engine could not be reached at all.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the engine at %s: %v (is it running? DE_SERVER sets its address)", e.Server, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsAuth tells whether err is the engine refusing the token.
func IsAuth(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Unauthorized()
}

// IsUnreachable tells whether err means the engine could not be reached.
func IsUnreachable(err error) bool {
	var ue *UnreachableError
	return errors.As(err, &ue)
}

// StatusOf returns the HTTP status of an *APIError in err's chain, or 0.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// do sends a request and returns the response of a 2xx answer; any other
// answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	if body == nil {
		return c.send(ctx, method, path, nil, "", 0)
	}
	return c.send(ctx, method, path, bytes.NewReader(body), "application/json", int64(len(body)))
}

// send is do with a streamed body of size bytes (-1: unknown).
func (c *Client) send(ctx context.Context, method, path string, rd io.Reader, contentType string, size int64) (*http.Response, error) {
	path = c.route(path)
	req, err := http.NewRequestWithContext(ctx, method, c.Server+path, rd)
	if err != nil {
		return nil, fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	if rd != nil {
		req.ContentLength = size
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &UnreachableError{Server: c.Server, Err: err}
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	ae := &APIError{Method: method, Path: path, Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id")}
	var eb contract.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
		ae.Message, ae.Problems = eb.Error, eb.Problems
	} else {
		ae.Message = strings.TrimSpace(string(b))
	}
	return nil, ae
}

// raw does a request and returns the whole body of a 2xx answer.
func (c *Client) raw(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	return b, nil
}

// getJSON does a request and decodes a 2xx JSON answer into out; it
// returns the raw body too.
func (c *Client) getJSON(ctx context.Context, method, path string, body []byte, out any) (json.RawMessage, error) {
	b, err := c.raw(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if out != nil && len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return b, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return b, nil
}

const base = "/deployment-engine"

// Precheck runs every pre-check again on the stored config.
func (c *Client) Precheck(ctx context.Context) (contract.PrecheckReply, json.RawMessage, error) {
	var r contract.PrecheckReply
	raw, err := c.getJSON(ctx, "GET", base+"/precheck", nil, &r)
	return r, raw, err
}

// ConfigSchema returns the config's JSON Schema.
func (c *Client) ConfigSchema(ctx context.Context) (json.RawMessage, error) {
	return c.getJSON(ctx, "GET", base+"/config/schema", nil, nil)
}

// Version decodes GET /version (no token needed) into out.
func (c *Client) Version(ctx context.Context, out any) (json.RawMessage, error) {
	return c.getJSON(ctx, "GET", "/version", nil, out)
}

// Config returns the stored config (secrets redacted by the engine).
func (c *Client) Config(ctx context.Context) (contract.Config, json.RawMessage, error) {
	var cfg contract.Config
	raw, err := c.getJSON(ctx, "GET", base+"/config", nil, &cfg)
	return cfg, raw, err
}

// SetConfig submits a config as JSON text; check false stores it without
// contacting the nodes (?check=0).
func (c *Client) SetConfig(ctx context.Context, cfg []byte, check bool) (contract.ConfigPutReply, json.RawMessage, error) {
	path := base + "/config"
	if !check {
		path += "?check=0"
	}
	var rep contract.ConfigPutReply
	raw, err := c.getJSON(ctx, "POST", path, cfg, &rep)
	return rep, raw, err
}

// Deploy starts a deployment and returns its id.
func (c *Client) Deploy(ctx context.Context) (string, json.RawMessage, error) {
	var s contract.DeployStarted
	raw, err := c.getJSON(ctx, "POST", base+"/deploy", nil, &s)
	return s.ID, raw, err
}

// Takeover clears the claim the engine from (one that no longer runs)
// left on the config's nodes, or on the nodes given.
func (c *Client) Takeover(ctx context.Context, from string, nodes ...string) (contract.TakeoverReply, json.RawMessage, error) {
	var r contract.TakeoverReply
	body, err := json.Marshal(contract.Takeover{V: contract.Version, From: from, Nodes: nodes})
	if err != nil {
		return r, nil, fmt.Errorf("encode takeover: %w", err)
	}
	raw, err := c.getJSON(ctx, "POST", base+"/takeover", body, &r)
	return r, raw, err
}

// Scale adds instances and starts the deployment that installs them.
func (c *Client) Scale(ctx context.Context, items ...contract.ScaleItem) (string, json.RawMessage, error) {
	var body []byte
	var err error
	if len(items) == 1 {
		body, err = json.Marshal(items[0])
	} else {
		body, err = json.Marshal(items)
	}
	if err != nil {
		return "", nil, fmt.Errorf("encode scale request: %w", err)
	}
	var s contract.DeployStarted
	raw, err := c.getJSON(ctx, "POST", base+"/scale", body, &s)
	return s.ID, raw, err
}

// Cancel ends a running deployment and returns it as it ended.
func (c *Client) Cancel(ctx context.Context, id string) (contract.Deployment, json.RawMessage, error) {
	var d contract.Deployment
	raw, err := c.getJSON(ctx, "POST", base+"/deployments/"+url.PathEscape(id)+"/cancel", nil, &d)
	return d, raw, err
}

// Deployments lists the deployments the engine keeps, without their steps.
func (c *Client) Deployments(ctx context.Context) ([]contract.DeploymentSummary, json.RawMessage, error) {
	var out []contract.DeploymentSummary
	raw, err := c.getJSON(ctx, "GET", base+"/deployments", nil, &out)
	return out, raw, err
}

// Deployment returns a deployment with its steps.
func (c *Client) Deployment(ctx context.Context, id string) (contract.Deployment, json.RawMessage, error) {
	var d contract.Deployment
	raw, err := c.getJSON(ctx, "GET", base+"/deployments/"+url.PathEscape(id), nil, &d)
	return d, raw, err
}

// Summary returns a deployment's summary: its state, its steps counted
// per state and per component, its first failed steps, its rollout's
// current batch; no step list.
func (c *Client) Summary(ctx context.Context, id string) (contract.DeploymentPage, json.RawMessage, error) {
	var p contract.DeploymentPage
	raw, err := c.getJSON(ctx, "GET", base+"/deployments/"+url.PathEscape(id)+"?steps=0", nil, &p)
	return p, raw, err
}

// Steps returns a deployment's summary with the page of its steps in
// states (every step when none) from offset, at most limit
// (contract.MaxStepPage).
func (c *Client) Steps(ctx context.Context, id string, states []string, offset, limit int) (contract.DeploymentPage, json.RawMessage, error) {
	q := url.Values{"offset": {strconv.Itoa(offset)}, "limit": {strconv.Itoa(limit)}}
	if len(states) > 0 {
		q.Set("steps", strings.Join(states, ","))
	}
	var p contract.DeploymentPage
	raw, err := c.getJSON(ctx, "GET", base+"/deployments/"+url.PathEscape(id)+"?"+q.Encode(), nil, &p)
	return p, raw, err
}

// AllSteps returns every step of a deployment in states, page by page.
func (c *Client) AllSteps(ctx context.Context, id string, states ...string) ([]contract.StepStatus, error) {
	var out []contract.StepStatus
	for {
		p, _, err := c.Steps(ctx, id, states, len(out), contract.MaxStepPage)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Steps...)
		if len(p.Steps) == 0 || p.Matched == nil || len(out) >= *p.Matched {
			return out, nil
		}
	}
}

// Status returns every component instance's state and its node's usage.
func (c *Client) Status(ctx context.Context) ([]contract.StatusEntry, json.RawMessage, error) {
	var out []contract.StatusEntry
	raw, err := c.getJSON(ctx, "GET", base+"/status", nil, &out)
	return out, raw, err
}

// Hardware returns one instance's node hardware, or every node's when comp
// is "all" and ip "0.0.0.0" (or both are empty).
func (c *Client) Hardware(ctx context.Context, comp, ip string) ([]contract.InstanceHardware, json.RawMessage, error) {
	if comp == "" && ip == "" {
		comp, ip = "all", "0.0.0.0"
	}
	q := url.Values{"comp": {comp}, "ip": {ip}}
	body, err := json.Marshal(map[string]string{"Comp": comp, "Ip": ip})
	if err != nil {
		return nil, nil, fmt.Errorf("encode hardware request: %w", err)
	}
	raw, err := c.getJSON(ctx, "GET", base+"/hardware?"+q.Encode(), body, nil)
	if err != nil {
		return nil, raw, err
	}
	var out []contract.InstanceHardware
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '[' {
		err = json.Unmarshal(t, &out)
	} else {
		var one contract.InstanceHardware
		err = json.Unmarshal(t, &one)
		out = []contract.InstanceHardware{one}
	}
	if err != nil {
		return nil, raw, fmt.Errorf("GET %s/hardware: decode answer: %w", base, err)
	}
	return out, raw, nil
}

// Restart restarts a component on a node ("all", "0.0.0.0": the cluster).
func (c *Client) Restart(ctx context.Context, comp, ip string) (json.RawMessage, error) {
	return c.monit(ctx, "restart", comp, ip)
}

// Stop stops a component on a node ("all", "0.0.0.0": the cluster).
func (c *Client) Stop(ctx context.Context, comp, ip string) (json.RawMessage, error) {
	return c.monit(ctx, "stop", comp, ip)
}

func (c *Client) monit(ctx context.Context, verb, comp, ip string) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]string{"name": comp, "ip": ip})
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", verb, err)
	}
	return c.raw(ctx, "PUT", base+"/"+verb, body)
}

// Logs lists the log files.
func (c *Client) Logs(ctx context.Context) ([]string, json.RawMessage, error) {
	var out []string
	raw, err := c.getJSON(ctx, "GET", base+"/download", nil, &out)
	return out, raw, err
}

// Log returns one log file's text.
func (c *Client) Log(ctx context.Context, name string) ([]byte, error) {
	return c.raw(ctx, "GET", base+"/logs/"+url.PathEscape(name), nil)
}

// retryDelay is how long Follow waits before it reconnects a stream that
// ended early.
var retryDelay = time.Second
