package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// deploymentID is the deployment the path names; a malformed id is
// answered 404 here.
func deploymentID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := chi.URLParam(r, "id")
	if len(id) > 64 || !subject.ValidToken(id) || !strings.HasPrefix(id, "d-") {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no deployment %q", contract.Clip(id)))
		return "", false
	}
	return id, true
}

// aboutDeployment is a route that sends a command on subj about the
// deployment its path names, with body(id), and answers its reply.
func (s *server) aboutDeployment(subj string, body func(id string) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if id, ok := deploymentID(w, r); ok {
			s.call(w, r, subj, body(id))
		}
	}
}

// deploymentGet answers GET /deployments/{id}: the deployment with every
// step, or, asked with ?steps=, ?offset= or ?limit=, its summary and a
// page of its steps (contract.DeploymentPage).
func (s *server) deploymentGet(w http.ResponseWriter, r *http.Request) {
	if in, ok := deployGetOf(w, r); ok {
		s.call(w, r, subject.DeployGet(), in)
	}
}

// deployGetOf is the command that reads the deployment r's path names,
// with the page of steps its query asks for (stepQuery); false once a
// bad id or query was answered here.
func deployGetOf(w http.ResponseWriter, r *http.Request) (contract.DeployGet, bool) {
	id, ok := deploymentID(w, r)
	if !ok {
		return contract.DeployGet{}, false
	}
	q, err := stepQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return contract.DeployGet{}, false
	}
	return contract.DeployGet{ID: id, Page: q}, true
}

// stepQuery reads ?steps=0|STATE[,STATE…], ?summary=1 (steps=0 spelt as
// a flag), ?offset= and ?limit=; nil when none is given (every step).
func stepQuery(v url.Values) (*contract.StepQuery, error) {
	if !v.Has("steps") && !v.Has("summary") && !v.Has("offset") && !v.Has("limit") {
		return nil, nil
	}
	q := &contract.StepQuery{}
	if v.Has("summary") {
		switch sum := v.Get("summary"); {
		case sum != "1" && sum != "0":
			return nil, fmt.Errorf("summary: %q is neither 1 (the summary alone) nor 0", contract.Clip(sum))
		case sum == "1" && v.Has("steps"):
			return nil, fmt.Errorf("summary=1 asks for no step: it takes no steps, offset or limit")
		case sum == "1":
			q.None = true
		}
	}
	switch steps := v.Get("steps"); steps {
	case "", "all":
	case "0":
		q.None = true
	default:
		for _, st := range strings.Split(steps, ",") {
			if st = strings.TrimSpace(st); st != "" && !slices.Contains(q.States, st) {
				q.States = append(q.States, st)
			}
		}
	}
	for _, p := range []struct {
		name string
		to   *int
		min  int
	}{{"offset", &q.Offset, 0}, {"limit", &q.Limit, 1}} {
		if !v.Has(p.name) {
			continue
		}
		n, err := strconv.Atoi(v.Get(p.name))
		if err != nil || n < p.min {
			return nil, fmt.Errorf("%s: %q is not a whole number of at least %d", p.name, contract.Clip(v.Get(p.name)), p.min)
		}
		*p.to = n
	}
	return q, q.Check()
}
