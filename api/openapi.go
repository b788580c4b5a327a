package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// OpenAPIPath is where the API serves its OpenAPI document, without a
// token: a client generator or a validator needs none to read it.
const OpenAPIPath = prefix + "/openapi.json"

// anonDoc describes a route that needs no token (see anonymous).
type anonDoc struct {
	method, pattern string // as registered on the router
	path            string // as the document names it
	doc             opDoc
}

// anonDocs are the routes without a token, for the nodes, monitoring and
// client generators. The console's files at / are left out: they are a
// web page, not an API.
var anonDocs = []anonDoc{
	{"GET", "/healthz", "/healthz", opDoc{id: "healthz", summary: "Whether the engine is connected to its bus",
		ok:   []reply{ok[HealthStatus](200, "connected")},
		errs: []reply{fails(503, "not connected to the bus")}}},
	{"GET", "/version", "/version", opDoc{id: "version", summary: "Which engine answers",
		ok: []reply{ok[BuildInfo](200, "the engine's version, commit and build time")}}},
	{"GET", "/metrics", "/metrics", opDoc{id: "metrics", summary: "The engine's metrics, for Prometheus",
		ok: []reply{{code: 200, desc: "Prometheus' text exposition format", media: "text/plain"}}}},
	{"GET", OpenAPIPath, OpenAPIPath, opDoc{id: "openapi", summary: "This document",
		ok: []reply{{code: 200, desc: "the OpenAPI 3.1 document of every route", schema: schemaObj{"type": "object"}}}}},
	{"GET", AsyncAPIPath, AsyncAPIPath, opDoc{id: "asyncapi", summary: "The AsyncAPI 3.0 document of the events on the engine's NATS",
		ok: []reply{{code: 200, desc: "the AsyncAPI 3.0 document of the de.evt.> subjects", schema: schemaObj{"type": "object"}}}}},
	{"GET", "/mirror/*", "/mirror/{path}", opDoc{id: "mirrorFile", summary: "A file of the engine's apt mirror, for the nodes",
		ok: []reply{{code: 200, desc: "the file, its content type by its name", media: "*/*"}},
		errs: []reply{fails(404, "no such file in the mirror"),
			{code: 404, desc: "no such file in the mirror", media: "text/plain"}}}},
	{"GET", "/releases/*", "/releases/{release}/{version}/packages/{package}", opDoc{id: "releasePackage",
		summary: "A stored release's compiled package, for the nodes",
		ok:      []reply{{code: 200, desc: "the package tarball", media: "*/*"}},
		errs:    []reply{fails(404, "no such release file"), fails(503, "the package could not be read; try again")}}},
	{"GET", CompiledPrefix + "*", CompiledPrefix + "{fingerprint}/{os}", opDoc{id: "compiledPackage",
		summary: "A package a node compiled, for the other nodes of its OS",
		ok:      []reply{{code: 200, desc: "the compiled package's tarball (gzip), to unpack in the package's directory", media: "application/gzip"}},
		errs:    []reply{fails(404, "no such compiled package"), fails(503, "the compiled package could not be read; try again")}}},
	{"PUT", CompiledPrefix + "*", CompiledPrefix + "{fingerprint}/{os}", opDoc{id: "putCompiledPackage",
		summary: "A node puts a package it compiled (Authorization: Bearer <its upload token>, X-DE-Node: <its IP>)",
		body:    &bodyDoc{media: "application/gzip", desc: "the package's directory as a gzipped tarball", streamed: true},
		ok: []reply{ok[contract.CompiledKept](201, "kept"),
			ok[contract.CompiledKept](200, "kept already: the first upload of a package stays, and the body is not read")},
		errs: []reply{fails(400, "the path, or a tarball a node must not unpack (a name outside the directory, a device, setuid)"),
			fails(403, "not a node's upload token"), fails(413, "past the release limits"), fails(507, "the engine's disk lacks the room")}}},
}

// HealthStatus is GET /healthz's answer: {"status": "ok"}.
type HealthStatus struct {
	Status string `json:"status"`
}

// pathParams describes the path parameters the routes use.
var pathParams = map[string]param{
	"id":          {"id", "the deployment's id (d-…)", schemaObj{"type": "string", "pattern": "^d-", "maxLength": 64}},
	"name":        {"name", "a log's name, as GET /deployment-engine/download lists it", str},
	"ip":          {"ip", "a node's IP, as the config lists it", schemaObj{"type": "string", "maxLength": 64}},
	"path":        {"path", "the file's path below the mirror; it may hold slashes", str},
	"release":     {"release", "the release's name", str},
	"version":     {"version", "the release's version", str},
	"package":     {"package", "the package's name and .tgz", schemaObj{"type": "string", "pattern": `\.tgz$`}},
	"fingerprint": {"fingerprint", "a compiled package's fingerprint: its name, version and sha1 and its dependencies'", schemaObj{"type": "string", "pattern": "^[0-9a-f]{16,64}$"}},
	"os":          {"os", "the OS and machine a node compiled on, and .tgz (debian-12-x86_64.tgz)", schemaObj{"type": "string", "pattern": `\.tgz$`}},
	"cluster":     {"cluster", "a cluster's name, as GET /deployment-engine/clusters lists it", schemaObj{"type": "string", "maxLength": 63}},
	"cert":        {"cert", "a certificate's name, as GET /deployment-engine/certificates lists it", schemaObj{"type": "string", "maxLength": 64}},
}

// OpenAPI is the API's OpenAPI 3.1 document, built from its route table
// and the contract's types; build fills in its version.
func OpenAPI(build BuildInfo) ([]byte, error) {
	s := &server{}
	return openAPIDoc(s.routes(), build)
}

// serveOpenAPI answers the document, without a token.
func (s *server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_, _ = w.Write(s.openapi)
}

func openAPIDoc(rs []route, build BuildInfo) ([]byte, error) {
	b := &docBuilder{sch: newSchemas(), paths: map[string]schemaObj{}}
	for _, rt := range rs {
		d, found := routeDocs[rt.method+" "+rt.pattern]
		if !found {
			return nil, fmt.Errorf("openapi: %s %s has no description in routeDocs", rt.method, rt.pattern)
		}
		op := b.add(rt.method, prefix+rt.pattern, d, b.shared(rt, d))
		// The least role a token needs for the operation.
		op["x-role"] = rt.role.String()
	}
	for _, a := range anonDocs {
		op := b.add(a.method, a.path, a.doc, []reply{tooMany})
		op["security"] = []any{}
	}
	b.sch.addExamples(examples())
	if len(b.sch.errs) > 0 {
		return nil, fmt.Errorf("openapi: %s", strings.Join(b.sch.errs, "; "))
	}
	version := build.Version
	if version == "" {
		version = "dev"
	}
	doc := schemaObj{
		"openapi": "3.1.0",
		"info": schemaObj{"title": "Deployment Engine", "version": version,
			"description": "The engine's HTTP API: the manual's routes and the engine's own. Every error answers the same JSON body " +
				"(ErrorBody), with the request's correlation id, also sent as the X-Request-Id header."},
		"servers":  []any{schemaObj{"url": "/"}},
		"security": []any{schemaObj{"apiToken": []any{}}},
		"paths":    b.paths,
		"components": schemaObj{
			"schemas": b.sch.components,
			"securitySchemes": schemaObj{"apiToken": schemaObj{"type": "http", "scheme": "bearer",
				"description": "Authorization: Bearer <token>: the engine's token (<data>/api-token, or DE_API_TOKEN) holds every role; " +
					"named tokens (<data>/api-tokens) hold one role — read, operate, deploy or admin, each holding the ones before it — and may " +
					"be limited to some clusters. Each operation's x-role is the least role it needs; every operation acts on the cluster default. " +
					"A token without the role, or that does not reach the cluster, gets 403 naming what it lacks."}},
		},
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return out.Bytes(), nil
}

// The refusals the routes share.
var (
	tooMany = reply{code: http.StatusTooManyRequests, desc: "too many requests in flight, from this client or all of them: retry after Retry-After seconds",
		typ: typeOf[contract.ErrorBody]()}
	noToken = reply{code: http.StatusUnauthorized, desc: "no token, or one the engine does not know (or that was revoked while the request ran)",
		typ: typeOf[contract.ErrorBody]()}
	noReach      = fails(http.StatusForbidden, "the token does not reach the cluster the route acts on")
	storeDown    = fails(http.StatusServiceUnavailable, "the engine's store has no quorum, or the service behind the route or the bus is unavailable")
	badBody      = fails(http.StatusBadRequest, "the body could not be read, or holds a key twice in one object")
	tooLarge     = fails(http.StatusRequestEntityTooLarge, "the body is larger than 1 MiB")
	timedOut     = fails(http.StatusGatewayTimeout, "the engine did not answer in time; a change may still take effect: look before sending it again")
	serviceError = fails(http.StatusInternalServerError, "the service failed; the engine's log has the details")
)

// shared are the refusals of a table route that its declaration implies.
func (b *docBuilder) shared(rt route, d opDoc) []reply {
	out := []reply{noToken, tooMany, storeDown}
	if rt.role > RoleRead {
		out = append(out, fails(http.StatusForbidden, "the token's role is below "+rt.role.String()))
	}
	out = append(out, noReach)
	if d.body != nil && !d.body.streamed {
		big := tooLarge
		if d.body.limit > 0 {
			big = fails(http.StatusRequestEntityTooLarge, "the body is larger than "+sizeText(d.body.limit))
		}
		out = append(out, badBody, big)
	}
	if d.bus {
		out = append(out, timedOut, serviceError)
	}
	return out
}

type docBuilder struct {
	sch   *schemas
	paths map[string]schemaObj
}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// add writes one operation into the document and returns it.
func (b *docBuilder) add(method, path string, d opDoc, shared []reply) schemaObj {
	op := schemaObj{"operationId": d.id, "summary": d.summary}
	if d.desc != "" {
		op["description"] = d.desc
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
		p := pathParams[m[1]]
		if p.name == "" {
			b.sch.errs = append(b.sch.errs, path+": no description of path parameter "+m[1])
		}
		params = append(params, schemaObj{"name": m[1], "in": "path", "required": true, "description": p.desc, "schema": p.schema})
	}
	for _, p := range d.query {
		params = append(params, schemaObj{"name": p.name, "in": "query", "description": p.desc, "schema": p.schema})
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if d.body != nil {
		op["requestBody"] = b.requestBody(d.body)
	}
	op["responses"] = b.responses(slices.Concat(d.ok, d.errs, shared))
	item := b.paths[path]
	if item == nil {
		item = schemaObj{}
		b.paths[path] = item
	}
	item[strings.ToLower(method)] = op
	return op
}

func (b *docBuilder) requestBody(bd *bodyDoc) schemaObj {
	media, sch := bd.media, b.schemaOf(bd.typ, bd.schema)
	if media == "" {
		media = "application/json"
	}
	mt := schemaObj{}
	switch {
	case media == "application/json":
		mt["schema"] = sch
	case strings.HasPrefix(media, "text/"):
		mt["schema"] = str
	}
	return schemaObj{"required": !bd.optional, "description": bd.desc, "content": schemaObj{media: mt}}
}

// responses merges the replies by status code: one code's descriptions
// are joined, and the bodies it may have are any of theirs.
func (b *docBuilder) responses(rs []reply) schemaObj {
	type merged struct {
		descs  []string
		bodies map[string][]any // by media type
		order  []string
		events schemaObj
	}
	byCode := map[int]*merged{}
	for _, r := range rs {
		m := byCode[r.code]
		if m == nil {
			m = &merged{bodies: map[string][]any{}}
			byCode[r.code] = m
		}
		if !slices.Contains(m.descs, r.desc) {
			m.descs = append(m.descs, r.desc)
		}
		media, sch := b.replyBody(r)
		if _, seen := m.bodies[media]; !seen {
			m.order = append(m.order, media)
			m.bodies[media] = nil
		}
		if r.events != nil {
			m.events = b.events(r.events)
			continue
		}
		if sch != nil && !containsJSON(m.bodies[media], sch) {
			m.bodies[media] = append(m.bodies[media], sch)
		}
	}
	out := schemaObj{}
	for code, m := range byCode {
		content := schemaObj{}
		for _, media := range m.order {
			mt := schemaObj{}
			switch bs := m.bodies[media]; len(bs) {
			case 0:
			case 1:
				mt["schema"] = bs[0]
			default:
				mt["schema"] = schemaObj{"anyOf": bs}
			}
			if media == eventStream {
				// OpenAPI 3.1 has no schema for a stream's items: each
				// event's data is named here, for readers and the drift
				// check.
				mt["x-sse-events"] = m.events
			}
			content[media] = mt
		}
		resp := schemaObj{"description": strings.Join(m.descs, "; "), "content": content}
		switch code {
		case http.StatusTooManyRequests:
			resp["headers"] = schemaObj{"Retry-After": schemaObj{"required": true, "description": "seconds to wait", "schema": schemaObj{"type": "string"}}}
		case http.StatusUnauthorized:
			resp["headers"] = schemaObj{"WWW-Authenticate": schemaObj{"description": `Bearer realm="deployment-engine" (absent with --auth none)`, "schema": str}}
		}
		out[strconv.Itoa(code)] = resp
	}
	return out
}

// replyBody is a reply's media type and schema (nil for none).
func (b *docBuilder) replyBody(r reply) (string, any) {
	switch {
	case r.events != nil:
		return eventStream, nil
	case r.media == "text/plain":
		return r.media, str
	case r.media != "":
		return r.media, nil
	}
	return "application/json", b.schemaOf(r.typ, r.schema)
}

// schemaOf is typ's schema, or sch with every type within it resolved.
func (b *docBuilder) schemaOf(typ reflect.Type, sch schemaObj) any {
	if typ != nil {
		return b.sch.ref(typ)
	}
	return b.resolve(sch)
}

func (b *docBuilder) resolve(v any) any {
	switch t := v.(type) {
	case reflect.Type:
		return b.sch.ref(t)
	case schemaObj:
		out := schemaObj{}
		for k, x := range t {
			out[k] = b.resolve(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = b.resolve(x)
		}
		return out
	}
	return v
}

// eventStream is the media type of server-sent events.
const eventStream = "text/event-stream"

// events are the schemas of a stream's events' data, by event name.
func (b *docBuilder) events(ev map[string]reflect.Type) schemaObj {
	out := schemaObj{}
	for name, t := range ev {
		out[name] = b.sch.ref(t)
	}
	return out
}

func containsJSON(list []any, v any) bool {
	want, _ := json.Marshal(v)
	for _, x := range list {
		if got, _ := json.Marshal(x); bytes.Equal(got, want) {
			return true
		}
	}
	return false
}

// addExamples shows each example in its type's component.
func (s *schemas) addExamples(ex map[reflect.Type]any) {
	for t, v := range ex {
		c, found := s.components[t.Name()]
		if !found || s.byName[t.Name()] != t {
			continue // a type no route uses
		}
		b, err := json.Marshal(v)
		var val any
		if err == nil {
			err = json.Unmarshal(b, &val)
		}
		if err != nil {
			s.errs = append(s.errs, t.Name()+" example: "+err.Error())
			continue
		}
		c["examples"] = []any{val}
	}
}
