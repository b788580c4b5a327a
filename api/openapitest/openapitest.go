// Package openapitest holds the engine's HTTP answers to its OpenAPI
// document (GET /deployment-engine/openapi.json): every answer a test
// sees, through a server middleware (Handler) or a client round-tripper
// (Transport), must have a status code its operation lists, a content
// type it lists, and a body valid against its schema; each event of a
// server-sent event stream against the schema the document names for it.
// A successful answer of a route the document lacks is drift too.
//
// The document is loaded and validated with kin-openapi, as OpenAPI 3.1
// with JSON Schema 2020-12.
package openapitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// MaxBody is the most of a body that is checked; a longer one has only
// its status and content type checked.
const MaxBody = 8 << 20

// Checker checks answers against one document.
type Checker struct {
	doc    *openapi3.T
	report func(error)
}

// Load reads and validates an OpenAPI document; report receives every
// answer that does not follow it.
func Load(ctx context.Context, doc []byte, report func(error)) (*Checker, error) {
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("openapitest: load the document: %w", err)
	}
	if err := t.Validate(ctx); err != nil {
		return nil, fmt.Errorf("openapitest: the document is not valid OpenAPI: %w", err)
	}
	return &Checker{doc: t, report: report}, nil
}

// Doc is the loaded document.
func (c *Checker) Doc() *openapi3.T { return c.doc }

// Check holds one answer to the document: nil when it follows it.
func (c *Checker) Check(ctx context.Context, req *http.Request, status int, header http.Header, body []byte, complete bool) error {
	route, params, ok := c.find(req.Method, req.URL.Path)
	if !ok {
		if status < 400 {
			return fmt.Errorf("%s %s answered %d: the document has no such operation", req.Method, req.URL.Path, status)
		}
		return nil // a refusal of a route that does not exist
	}
	what := fmt.Sprintf("%s %s (%s %s) answered %d", req.Method, req.URL.Path, route.Method, route.Path, status)
	if route.Operation.Responses.Status(status) == nil {
		return fmt.Errorf("%s: the document lists no %d for it", what, status)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}
	ct, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	stream := ct == "text/event-stream"
	if !complete || stream {
		opts.ExcludeResponseBody = true
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status, Header: header, Body: io.NopCloser(bytes.NewReader(body)), Options: opts,
	}
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if opts.ExcludeResponseBody && header.Get("Content-Type") != "" {
		// The body was not read: its content type is still held to the list.
		if mt := route.Operation.Responses.Status(status).Value.Content; len(mt) > 0 && mt.Get(header.Get("Content-Type")) == nil {
			return fmt.Errorf("%s: the document lists no content type %q for it", what, header.Get("Content-Type"))
		}
	}
	if stream && complete && status == http.StatusOK {
		if err := c.checkEvents(route, status, body); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// find is the operation of a request's method and path. A parameter
// matches one segment; the last, when it is named path, the rest.
func (c *Checker) find(method, path string) (*routers.Route, map[string]string, bool) {
	var best *routers.Route
	var bestParams map[string]string
	for tmpl, item := range c.doc.Paths.Map() {
		params, ok := match(tmpl, path)
		if !ok {
			continue
		}
		op := item.GetOperation(method)
		if op == nil {
			continue
		}
		if best == nil || len(params) < len(bestParams) {
			best = &routers.Route{Spec: c.doc, Path: tmpl, PathItem: item, Method: method, Operation: op}
			bestParams = params
		}
	}
	return best, bestParams, best != nil
}

func match(tmpl, path string) (map[string]string, bool) {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	params := map[string]string{}
	for i, seg := range ts {
		if i >= len(ps) {
			return nil, false
		}
		name, isParam := strings.CutPrefix(seg, "{")
		name, _ = strings.CutSuffix(name, "}")
		switch {
		case isParam && i == len(ts)-1 && name == "path":
			params[name] = strings.Join(ps[i:], "/")
			return params, ps[i] != ""
		case isParam:
			if ps[i] == "" {
				return nil, false
			}
			params[name], _ = url.PathUnescape(ps[i])
		case seg != ps[i]:
			return nil, false
		}
	}
	return params, len(ts) == len(ps)
}

// checkEvents holds each event of a stream to the schema the document's
// x-sse-events names for its kind.
func (c *Checker) checkEvents(route *routers.Route, status int, body []byte) error {
	mt := route.Operation.Responses.Status(status).Value.Content.Get("text/event-stream")
	if mt == nil {
		return errors.New("the document lists no text/event-stream")
	}
	kinds, _ := mt.Extensions["x-sse-events"].(map[string]any)
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), MaxBody)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := c.checkEvent(kinds, event, []byte(strings.TrimPrefix(line, "data: "))); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (c *Checker) checkEvent(kinds map[string]any, event string, data []byte) error {
	ref, _ := kinds[event].(map[string]any)
	name, ok := strings.CutPrefix(fmt.Sprint(ref["$ref"]), "#/components/schemas/")
	if !ok {
		return fmt.Errorf("event %q: the document names no schema for it", event)
	}
	sch := c.doc.Components.Schemas[name]
	if sch == nil || sch.Value == nil {
		return fmt.Errorf("event %q: no schema %s", event, name)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return fmt.Errorf("event %q: data is not JSON: %w", event, err)
	}
	if err := sch.Value.VisitJSON(v, openapi3.EnableJSONSchema2020(), openapi3.VisitAsResponse()); err != nil {
		return fmt.Errorf("event %q does not match schema %s: %w", event, name, err)
	}
	return nil
}
