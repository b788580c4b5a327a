package sched

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deployment-engine/engine/planner/steps"
	"github.com/deployment-engine/engine/services/contract"
)

// The DAG's rules, on a record alone: no bus, no scheduler.

const (
	dA = "10.0.0.1/a/install"
	dB = "10.0.0.1/b/install"
	dC = "10.0.0.2/c/install"
	dD = "10.0.0.2/d/install"
	dE = "10.0.0.3/e/install"
	dF = "10.0.0.1/f/install"
)

// withStates is diamond("d") with the given step states.
func withStates(states map[string]string) *Record {
	rec := diamond("d")
	for id, state := range states {
		rec.step(id).State = state
	}
	return rec
}

func TestDAGReady(t *testing.T) {
	S, U, F, R, Q := contract.StateSucceeded, contract.StateUnchanged, contract.StateFailed, contract.StateRunning, stateQueued
	cases := []struct {
		name   string
		states map[string]string
		want   []string
	}{
		{"fresh: the first by priority on each node", nil, []string{dA, dE}},
		{"a running holds its node and what comes after it", map[string]string{dA: R}, []string{dE}},
		{"a queued holds its node", map[string]string{dA: Q, dE: Q}, nil},
		{"a done frees b and c", map[string]string{dA: S}, []string{dB, dC, dE}},
		{"unchanged counts as done", map[string]string{dA: U}, []string{dB, dC, dE}},
		{"a failed: its node's next step runs", map[string]string{dA: F}, []string{dE, dF}},
		{"d waits for both b and c", map[string]string{dA: S, dC: S, dE: S}, []string{dB}},
		{"d after b and c, by priority", map[string]string{dA: S, dB: S, dC: S}, []string{dD, dE, dF}},
		{"all done: nothing", map[string]string{dA: S, dB: S, dC: S, dD: S, dE: S, dF: S}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := withStates(c.states).ready(); !slices.Equal(got, c.want) {
				t.Errorf("ready = %v, want %v", got, c.want)
			}
		})
	}
}

func TestDAGSkipBlocked(t *testing.T) {
	S, F, K, P := contract.StateSucceeded, contract.StateFailed, contract.StateSkipped, contract.StatePending
	cases := []struct {
		name    string
		states  map[string]string
		skipped bool
		want    map[string]string // states after
	}{
		{"nothing failed", map[string]string{dA: S}, false, map[string]string{dB: P, dC: P, dD: P}},
		{"a failed: b, c and, through them, d", map[string]string{dA: F}, true, map[string]string{dB: K, dC: K, dD: K, dE: P, dF: P}},
		{"b failed: d only", map[string]string{dA: S, dB: F}, true, map[string]string{dC: P, dD: K, dF: P}},
		{"a skipped skips what follows it", map[string]string{dA: K}, true, map[string]string{dB: K, dC: K, dD: K}},
		{"a step that ran is not skipped", map[string]string{dA: S, dB: F, dD: S}, false, map[string]string{dD: S}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := withStates(c.states)
			if got := rec.skipBlocked(); got != c.skipped {
				t.Errorf("skipBlocked = %v, want %v", got, c.skipped)
			}
			for id, want := range c.want {
				st := rec.step(id)
				if st.State != want {
					t.Errorf("%s: %s, want %s", id, st.State, want)
				}
				if want == K && c.states[id] != K && !strings.HasPrefix(st.Error, "not run: 10.0.0.") {
					t.Errorf("%s: skipped without naming why: %q", id, st.Error)
				}
			}
		})
	}
}

func TestDAGApply(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	code := 3
	ev := func(id, state string, attempt int, final bool) contract.StepEvent {
		return contract.StepEvent{ID: id, State: state, Attempt: attempt, Final: final, Started: &t0, ExitCode: &code, Error: state + " says so"}
	}
	type want struct {
		changed bool
		state   string
		attempt int
		err     string
		count   int // the deployment's Changed
	}
	cases := []struct {
		name   string
		before map[string]string
		events []contract.StepEvent
		want   want
	}{
		{"running", nil, []contract.StepEvent{ev(dA, contract.StateRunning, 1, false)},
			want{true, contract.StateRunning, 1, "running says so", 0}},
		{"succeeded counts as a change", nil, []contract.StepEvent{ev(dA, contract.StateSucceeded, 1, true)},
			want{true, contract.StateSucceeded, 1, "", 1}},
		{"unchanged does not", nil, []contract.StepEvent{ev(dA, contract.StateUnchanged, 1, true)},
			want{true, contract.StateUnchanged, 1, "", 0}},
		{"a failure the installer retries keeps it running", map[string]string{dA: contract.StateRunning},
			[]contract.StepEvent{ev(dA, contract.StateFailed, 2, false)},
			want{true, contract.StateRunning, 2, "failed says so", 0}},
		{"a final failure fails it", nil, []contract.StepEvent{ev(dA, contract.StateFailed, 3, true)},
			want{true, contract.StateFailed, 3, "failed says so", 0}},
		{"an event twice changes nothing the second time", nil,
			[]contract.StepEvent{ev(dA, contract.StateSucceeded, 1, true), ev(dA, contract.StateSucceeded, 1, true)},
			want{false, contract.StateSucceeded, 1, "", 1}},
		{"a late running after the end changes nothing", nil,
			[]contract.StepEvent{ev(dA, contract.StateFailed, 1, true), ev(dA, contract.StateRunning, 2, false)},
			want{false, contract.StateFailed, 1, "failed says so", 0}},
		{"the attempt never goes back", nil,
			[]contract.StepEvent{ev(dA, contract.StateRunning, 2, false), ev(dA, contract.StateRunning, 1, false)},
			want{true, contract.StateRunning, 2, "running says so", 0}},
		{"an unknown step changes nothing", nil, []contract.StepEvent{ev("10.0.0.9/x/install", contract.StateSucceeded, 1, true)},
			want{false, contract.StatePending, 0, "", 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := withStates(c.before)
			var changed bool
			for _, e := range c.events {
				changed = rec.apply(e)
			}
			st := rec.step(dA)
			got := want{changed, st.State, st.Attempt, st.Error, rec.Changed}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
			if st.State != contract.StatePending && (st.Started == nil || !st.Started.Equal(t0)) {
				t.Errorf("started %v, want %v", st.Started, t0)
			}
		})
	}
}

func TestDAGFinish(t *testing.T) {
	S, U, F, K, P := contract.StateSucceeded, contract.StateUnchanged, contract.StateFailed, contract.StateSkipped, contract.StatePending
	all := func(state string, but map[string]string) map[string]string {
		m := map[string]string{dA: state, dB: state, dC: state, dD: state, dE: state, dF: state}
		for k, v := range but {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name    string
		states  map[string]string
		reason  string
		work    bool // pendingWork before finishing
		state   string
		failed  int
		errHas  string
		errNone bool
	}{
		{"all succeeded", all(S, nil), "", false, contract.DeploySucceeded, 0, "", true},
		{"unchanged is success", all(U, map[string]string{dA: S}), "", false, contract.DeploySucceeded, 0, "", true},
		{"a failure fails it and says how many", all(S, map[string]string{dB: F, dD: K}), "", false, contract.DeployFailed, 1, "1 step(s) failed", false},
		{"a reason fails it with that reason", all(S, nil), "no progress for 2m", false, contract.DeployFailed, 0, "no progress for 2m", false},
		{"pending work remains", all(S, map[string]string{dF: P}), "", true, contract.DeploySucceeded, 0, "", true},
		{"queued work remains", all(S, map[string]string{dF: stateQueued}), "", true, contract.DeploySucceeded, 0, "", true},
	}
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := withStates(c.states)
			if got := rec.pendingWork(); got != c.work {
				t.Errorf("pendingWork = %v, want %v", got, c.work)
			}
			failed := rec.conclude(c.reason, now)
			if rec.State != c.state || failed != c.failed || rec.live() {
				t.Errorf("state %s failed %d live %v, want %s %d false", rec.State, failed, rec.live(), c.state, c.failed)
			}
			if c.errNone != (rec.Error == "") || !strings.Contains(rec.Error, c.errHas) {
				t.Errorf("error %q, want one holding %q", rec.Error, c.errHas)
			}
			if rec.Finished == nil || !rec.Finished.Equal(now) {
				t.Errorf("finished %v", rec.Finished)
			}
		})
	}
}

func TestDAGAbort(t *testing.T) {
	rec := withStates(map[string]string{dA: contract.StateSucceeded, dB: contract.StateRunning, dC: stateQueued, dE: contract.StateFailed})
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rec.abort("cancelled by request", now)
	want := map[string]string{dA: contract.StateSucceeded, dB: contract.StateFailed, dC: contract.StateFailed,
		dD: contract.StateSkipped, dE: contract.StateFailed, dF: contract.StateSkipped}
	for id, w := range want {
		if st := rec.step(id); st.State != w {
			t.Errorf("%s: %s, want %s", id, st.State, w)
		}
	}
	if st := rec.step(dB); st.Error != "cancelled by request" || st.Finished == nil {
		t.Errorf("stopped step: %q finished %v", st.Error, st.Finished)
	}
	if st := rec.step(dD); st.Error != "not run: cancelled by request" {
		t.Errorf("skipped step: %q", st.Error)
	}
	if rec.pendingWork() {
		t.Error("work left after abort")
	}
}

func TestDAGPlacementAfter(t *testing.T) {
	rec := &Record{Placement: map[string][]string{"n1": {"a", "b"}, "n2": {"c"}}}
	add := func(node, comp, action, state string) {
		rec.Steps = append(rec.Steps, contract.StepStatus{ID: steps.ID(node, comp, action), Node: node, Component: comp, Action: action, State: state})
	}
	add("n1", "a", "start", contract.StateSucceeded)
	add("n1", "b", "start", contract.StateFailed)
	add("n2", "c", "start", contract.StateUnchanged)
	add("n3", "old", "remove", contract.StateSucceeded)
	add("n3", "kept", "remove", contract.StateFailed)
	rec.reindex()
	prev := map[string][]string{"n1": {"a", "z"}, "n3": {"old", "kept"}}
	got := rec.placementAfter(prev)
	want := map[string][]string{"n1": {"a", "z"}, "n2": {"c"}, "n3": {"kept"}}
	for _, l := range got {
		slices.Sort(l)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("placement %v, want %v", got, want)
	}
}

// What a deployment reached on a node without starting it is partial until
// a deployment starts or removes it; what it never ran is not.
func TestDAGPartialAfter(t *testing.T) {
	rec := &Record{Placement: map[string][]string{"n1": {"a", "b", "c"}, "n2": {"d"}}}
	add := func(node, comp, action, state string) {
		rec.Steps = append(rec.Steps, contract.StepStatus{ID: steps.ID(node, comp, action), Node: node, Component: comp, Action: action, State: state})
	}
	add("n1", "a", "install", contract.StateFailed) // reached, failed
	add("n1", "a", "start", contract.StateSkipped)
	add("n1", "b", "install", contract.StateSucceeded)
	add("n1", "b", "start", contract.StateFailed)    // reached, did not start
	add("n1", "c", "install", contract.StatePending) // never ran
	add("n2", "d", "start", contract.StateSucceeded) // started: placed
	add("n3", "gone", "remove", contract.StateSucceeded)
	add("n3", "stuck", "remove", contract.StateFailed)
	rec.reindex()
	prev := map[string][]string{"n2": {"d"}, "n3": {"gone", "stuck"}, "n4": {"other"}}
	got := rec.partialAfter(prev)
	want := map[string][]string{"n1": {"a", "b"}, "n3": {"stuck"}, "n4": {"other"}}
	for _, l := range got {
		slices.Sort(l)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("partial %v, want %v", got, want)
	}
	if pl := rec.placementAfter(nil); !reflect.DeepEqual(pl, map[string][]string{"n2": {"d"}}) {
		t.Errorf("placement %v: only what started is placed", pl)
	}
}

func TestDAGChain(t *testing.T) {
	S, F, R, Q := contract.StateSucceeded, contract.StateFailed, contract.StateRunning, stateQueued
	cases := []struct {
		name   string
		states map[string]string
		head   string
		want   []string
	}{
		{"a takes its node's steps that wait only for it, by priority", nil, dA, []string{dA, dB, dF}},
		{"c waits for nothing on its node but d waits for b too", map[string]string{dA: S}, dC, []string{dC}},
		{"d once b is done elsewhere", map[string]string{dA: S, dB: S}, dC, []string{dC, dD}},
		{"a node alone", nil, dE, []string{dE}},
		{"a step dispatched again takes the queued ones after it", map[string]string{dA: S, dB: R, dF: Q}, dB, []string{dB, dF}},
		{"what is done or failed stays out", map[string]string{dA: S, dB: F}, dF, []string{dF}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := withStates(c.states).chain(c.head); !slices.Equal(got, c.want) {
				t.Errorf("chain(%s) = %v, want %v", c.head, got, c.want)
			}
		})
	}
}

// A failed step ends its chain: the steps queued behind it on its node go
// back to pending, and those that waited for it are then skipped.
func TestDAGFailureUnchains(t *testing.T) {
	rec := withStates(map[string]string{dA: contract.StateRunning, dB: stateQueued, dF: stateQueued, dC: stateQueued})
	now := time.Now()
	rec.apply(contract.StepEvent{ID: dA, Node: "10.0.0.1", State: contract.StateFailed, Final: true, Finished: &now})
	rec.skipBlocked()
	want := map[string]string{dA: contract.StateFailed, dB: contract.StateSkipped, dF: contract.StatePending, dC: stateQueued}
	for id, w := range want {
		if got := rec.step(id).State; got != w {
			t.Errorf("%s: %s, want %s", id, got, w)
		}
	}
	// A failure that will be tried again keeps the chain queued.
	rec = withStates(map[string]string{dA: contract.StateRunning, dB: stateQueued})
	rec.apply(contract.StepEvent{ID: dA, Node: "10.0.0.1", State: contract.StateFailed})
	if got := rec.step(dB).State; got != stateQueued {
		t.Errorf("b after a's failure to be tried again: %s, want queued", got)
	}
}

func TestDAGBehind(t *testing.T) {
	R, Q, S := contract.StateRunning, stateQueued, contract.StateSucceeded
	rec := withStates(map[string]string{dA: R, dB: Q, dF: Q, dE: Q})
	for id, want := range map[string]bool{dA: false, dB: true, dF: false, dE: false} {
		if got := rec.behind(rec.step(id)); got != want {
			t.Errorf("behind(%s) = %v, want %v", id, got, want)
		}
	}
	rec = withStates(map[string]string{dA: S, dB: Q})
	if rec.behind(rec.step(dB)) {
		t.Error("b queued after a done is not behind anything")
	}
}
