package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
	"github.com/deployment-engine/engine/services/subject"
)

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
// change as a diff of its redacted form.
func (s *server) audit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		spec, params := auditOf(r)
		action := spec.action
		if action == "" {
			next.ServeHTTP(w, r)
			return
		}
		var body []byte
		if action != contract.AuditRelease && action != contract.AuditConfig && action != contract.AuditPlan && r.Body != nil {
			// Read the start of small bodies and hand the handler all of it.
			body, _ = io.ReadAll(io.LimitReader(r.Body, MaxBody+1))
			r.Body = readCloser{io.MultiReader(bytes.NewReader(body), r.Body), r.Body}
		}
		var before map[string]any
		if spec.diff {
			// One config change at a time, so the diff is this request's.
			s.cfgMu.Lock()
			defer s.cfgMu.Unlock()
			before = s.configSnapshot(r.Context())
		}
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		e := contract.AuditEntry{Actor: actorOf(r.Context()), Action: action, Object: spec.object, Code: rec.code, Result: "ok"}
		var reply struct {
			ID      string `json:"id"`
			Error   string `json:"error"`
			Name    string `json:"name"`
			Version string `json:"version"`
		}
		_ = json.Unmarshal(rec.body.Bytes(), &reply)
		if rec.code >= 400 {
			e.Result, e.Detail = "failed", reply.Error
		}
		e.Deployment = reply.ID
		if spec.param != "" {
			e.Object = params.URLParam(spec.param)
		}
		if spec.planID {
			// A plan's id is no deployment's.
			e.Deployment, e.Object = "", cmp.Or(reply.ID, e.Object)
		}
		switch action {
		case contract.AuditRestart, contract.AuditStop:
			if t, problem := parseTarget(body, r); problem == "" {
				e.Component, e.IP = t.Comp, t.IP
				e.Object = t.Comp + "@" + t.IP
			}
		case contract.AuditScale:
			e.Object = scaleObject(body)
		case contract.AuditHeal:
			var h struct {
				Enabled *bool `json:"enabled"`
			}
			if json.Unmarshal(body, &h) == nil && h.Enabled != nil {
				e.Detail = strings.TrimSpace(e.Detail + fmt.Sprintf(" enabled=%v", *h.Enabled))
			}
		case contract.AuditRelease:
			e.Object = strings.Trim(reply.Name+"/"+reply.Version, "/")
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

type readCloser struct {
	io.Reader
	io.Closer
}

// scaleObject names the instances a scale request adds.
func scaleObject(body []byte) string {
	var raw any
	if json.Unmarshal(body, &raw) != nil {
		return "scale"
	}
	list, ok := raw.([]any)
	if !ok {
		list = []any{raw}
	}
	var out []string
	for _, x := range list {
		m, _ := x.(map[string]any)
		var comp, ip string
		for k, v := range m {
			str, _ := v.(string)
			switch strings.ToLower(k) {
			case "comp", "component", "name":
				comp = str
			case "ip":
				ip = str
			}
		}
		out = append(out, comp+"@"+ip)
	}
	return strings.Join(out, ",")
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
