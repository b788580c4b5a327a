package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

// auditRecord is what a change's handler tells the audit beyond what its
// route declares: the object it acted on, and a word for the entry's
// detail. A nil record, a request's that is not audited, takes nothing.
type auditRecord struct {
	object        string
	component, ip string
	detail        string
}

type auditRecordKey struct{}

// recordOf is the request's audit record, nil when it is not audited.
func recordOf(r *http.Request) *auditRecord {
	a, _ := r.Context().Value(auditRecordKey{}).(*auditRecord)
	return a
}

// target records the instance a request acts on.
func (a *auditRecord) target(t contract.Target) {
	if a != nil {
		a.object, a.component, a.ip = t.Comp+"@"+t.IP, t.Comp, t.IP
	}
}

// named records the object a request acts on.
func (a *auditRecord) named(object string) {
	if a != nil {
		a.object = object
	}
}

// note records a word for the end of the entry's detail.
func (a *auditRecord) note(detail string) {
	if a != nil {
		a.detail = detail
	}
}

// recorder keeps a response's status and the start of its body.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection underneath
// (restart and stop extend their write deadline).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	if room := 64<<10 - r.body.Len(); room > 0 {
		r.body.Write(b[:min(len(b), room)])
	}
	return r.ResponseWriter.Write(b)
}

// audit records every change made through the API, after it was answered:
// who (the token's name), what, on what, how it ended, and the config's
// change as a diff of its redacted form. What the route declares and what
// its handler recorded make the entry; it reads no request body.
func (s *server) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spec, params := auditOf(r)
		action := spec.action
		if action == "" {
			next.ServeHTTP(w, r)
			return
		}
		note := &auditRecord{object: spec.object}
		if spec.param != "" {
			note.object = params.URLParam(spec.param)
		}
		r = r.WithContext(context.WithValue(r.Context(), auditRecordKey{}, note))
		var before map[string]any
		if spec.diff {
			// One config change at a time, so the diff is this request's.
			s.cfgMu.Lock()
			defer s.cfgMu.Unlock()
			before = s.configSnapshot(r.Context())
		}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		e := contract.AuditEntry{Actor: actorOf(r.Context()), Cluster: s.clusterOf(r), Action: action, Code: rec.code, Result: "ok",
			Object: note.object, Component: note.component, IP: note.ip}
		// Every reply names its failure, and the deployment a change started.
		var reply struct {
			ID    string `json:"id"`
			Error string `json:"error"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &reply)
		if rec.code >= 400 {
			e.Result, e.Detail = "failed", reply.Error
		}
		e.Deployment = reply.ID
		if spec.planID {
			// A plan's id is no deployment's.
			e.Deployment, e.Object = "", cmp.Or(reply.ID, e.Object)
		}
		if note.detail != "" {
			e.Detail = strings.TrimSpace(e.Detail + " " + note.detail)
		}
		if spec.diff && rec.code < 300 {
			e.Diff = diffJSON(before, s.configSnapshot(r.Context()))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := bus.PublishAudit(ctx, s.js, e); err != nil {
			s.log.Error("audit entry lost", "action", action, "actor", e.Actor, "err", err)
		}
	})
}

// configSnapshot is the stored config as clients see it (secrets
// redacted), decoded; nil when there is none.
func (s *server) configSnapshot(ctx context.Context) map[string]any {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := kit.Request(ctx, s.o.NC, subject.ConfigGet(), nil)
	if err != nil || rep.Code != http.StatusOK {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(rep.Body, &m) != nil {
		return nil
	}
	return m
}

// secretKeys are field names whose values never appear in a diff, whatever
// the config's own redaction does.
var secretKeys = map[string]bool{"password": true, "root": true, "key": true, "secret": true, "token": true}

// diffJSON lists what changed between two JSON documents, one line per
// leaf: "+ path: new", "- path: old", "~ path: old → new", sorted by path.
func diffJSON(before, after map[string]any) []string {
	a, b := map[string]string{}, map[string]string{}
	flatten("", before, a)
	flatten("", after, b)
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	keys := make([]string, 0, len(paths))
	for p := range paths {
		keys = append(keys, p)
	}
	sort.Strings(keys)
	var out []string
	for _, p := range keys {
		old, hadOld := a[p]
		cur, hasNew := b[p]
		switch {
		case !hadOld:
			out = append(out, "+ "+p+": "+cur)
		case !hasNew:
			out = append(out, "- "+p+": "+old)
		case old != cur:
			out = append(out, "~ "+p+": "+old+" → "+cur)
		}
	}
	return out
}

func flatten(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if secretKeys[strings.ToLower(k)] {
				if val != nil && val != "" {
					out[join(k)] = `"` + contract.Redacted + `"`
				}
				continue
			}
			flatten(join(k), val, out)
		}
	case []any:
		for i, val := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), val, out)
		}
	case nil:
		if prefix != "" {
			out[prefix] = "null"
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}
