package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/deployment-engine/engine/deploy/client"
	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["problems"] = clientCommand("problems", problemsCmd) }

// problemsCmd: problems [--auto] | problems resolve ID FIX [--follow].
// Listing exits 3 when a problem is found; --auto applies each
// recommended fix in turn, following its deployment to its end, and never
// a changed host key's.
func problemsCmd(ctx context.Context, s *session) int {
	if len(s.args) > 0 && s.args[0] == "resolve" {
		if code := s.begin(len(s.args) == 3 && !s.auto, "problems resolve needs ID FIX (a fix GET /problems lists for it)"); code != exitOK {
			return code
		}
		id, raw, err := s.c.Resolve(ctx, s.args[1], s.args[2])
		if err != nil {
			return s.fail(err)
		}
		return s.started(ctx, id, raw)
	}
	if code := s.begin(len(s.args) == 0, "problems takes no argument but resolve ID FIX"); code != exitOK {
		return code
	}
	list, raw, err := s.c.Problems(ctx)
	if err != nil {
		return s.fail(err)
	}
	if s.auto {
		return s.autoResolve(ctx, list)
	}
	code := s.answer(raw, nil, func() { printProblems(s, list) })
	if code == exitOK && len(list.Problems) > 0 {
		return exitUnhealthy
	}
	return code
}

// printProblems shows a scan as a table, the recommended fix starred.
func printProblems(s *session, list contract.ProblemList) {
	for _, u := range list.Unread {
		fmt.Fprintf(s.stderr, "problems: not read: %s\n", printable(u))
	}
	if len(list.Problems) == 0 {
		fmt.Fprintln(s.stdout, "no problem found")
		return
	}
	tw := table(s.stdout, "ID\tKIND\tWHERE\tFIXES\tDETAIL")
	for _, p := range list.Problems {
		var fixes []string
		for _, f := range p.Fixes {
			name := f.Name
			if f.Recommended {
				name += "*"
			}
			fixes = append(fixes, name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Kind, problemWhere(p), strings.Join(fixes, ","), printable(p.Detail))
	}
	_ = tw.Flush()
	fmt.Fprintln(s.stdout, "* recommended: `problems --auto` applies it; `problems resolve ID FIX` applies any one")
}

func problemWhere(p contract.ClusterProblem) string {
	switch {
	case p.Certificate != "":
		return "certificate " + p.Certificate
	case p.Component != "":
		return p.Component + "@" + p.Node
	}
	return p.Node
}

// autoResult is one problem's outcome under --auto.
type autoResult struct {
	Problem    string `json:"problem"`
	Kind       string `json:"kind"`
	Where      string `json:"where"`
	Fix        string `json:"fix,omitempty"`
	Deployment string `json:"deployment,omitempty"`
	Result     string `json:"result"`
}

// autoResolve applies each problem's recommended fix, one deployment at a
// time, each followed to its end. A problem a fix before it solved is
// gone from the engine's new scan (404): it counts as fixed. Exit 1 when
// a fix failed, 3 when problems are left to a person, else 0.
func (s *session) autoResolve(ctx context.Context, list contract.ProblemList) int {
	var out []autoResult
	failed, left := false, false
	for _, p := range list.Problems {
		r := autoResult{Problem: p.ID, Kind: p.Kind, Where: problemWhere(p)}
		fix, ok := p.Recommended()
		switch {
		case p.Kind == contract.ProblemHostKey || fix.Name == contract.FixForgetHostKey:
			r.Result, left = "left to a person: a changed host key is fixed only by name (problems resolve ID forget-host-key)", true
		case !ok:
			r.Result, left = "left to a person: "+printable(p.Detail), true
		default:
			r.Fix = fix.Name
			r.Deployment, r.Result = s.applyFix(ctx, p.ID, fix.Name)
			failed = failed || strings.HasPrefix(r.Result, "failed")
		}
		out = append(out, r)
		if !s.json {
			fmt.Fprintf(s.stdout, "%s %s %s: %s\n", r.Problem, r.Kind, r.Where, autoLine(r))
		}
	}
	if s.json {
		if out == nil {
			out = []autoResult{}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintf(s.stdout, "%s\n", b)
	} else if len(out) == 0 {
		fmt.Fprintln(s.stdout, "no problem found")
	}
	switch {
	case failed:
		return exitFailed
	case left:
		return exitUnhealthy
	}
	return exitOK
}

func autoLine(r autoResult) string {
	if r.Fix == "" {
		return r.Result
	}
	if r.Deployment == "" {
		return r.Fix + ": " + r.Result
	}
	return fmt.Sprintf("%s, deployment %s: %s", r.Fix, r.Deployment, r.Result)
}

// applyFix resolves problem id with fix and follows the deployment to its
// end: its id, and "succeeded", "fixed already" or "failed: why".
func (s *session) applyFix(ctx context.Context, id, fix string) (string, string) {
	dep, _, err := s.c.Resolve(ctx, id, fix)
	if client.StatusOf(err) == 404 {
		return "", "fixed already (an earlier fix solved it)"
	}
	if err != nil {
		return "", "failed: " + printable(err.Error())
	}
	if !s.json {
		fmt.Fprintf(s.stderr, "%s: %s, deployment %s…\n", id, fix, dep)
	}
	d, err := s.c.Follow(ctx, dep, func(client.Event) error { return nil })
	switch {
	case err != nil:
		return dep, "failed: following it: " + printable(err.Error())
	case d.State != contract.DeploySucceeded:
		why := "the deployment ended " + d.State
		if d.Error != "" {
			why += ": " + printable(d.Error)
		}
		return dep, "failed: " + why
	}
	return dep, "succeeded"
}
