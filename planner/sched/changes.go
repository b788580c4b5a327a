package sched

import "time"

// A deployment's record is stored as a base and the changes that follow
// it. The base (DE_DEPLOYMENTS <id>) is the record as it began, marked
// Changes, written once; each flush appends what changed since the last
// one as <id>.<n>, n = 1, 2, … (changeKey), and a reader applies them in
// order. A finished deployment is compacted back into one whole record
// under <id>, the form every record had before changes, which is still
// read as it is.

// change is one flush's worth of a record: the fields of its head, which
// are small and sent whole, and the steps and batches that changed.
type change struct {
	Seq      int        `json:"seq"`
	Writer   string     `json:"writer"`
	State    string     `json:"state"`
	Changed  int        `json:"changed"`
	Finished *time.Time `json:"finished,omitempty"`
	Error    string     `json:"error,omitempty"`
	Steps    []stepDiff `json:"steps,omitempty"`
	Batches  []batchDif `json:"batches,omitempty"`
}

// stepDiff is step I's status as stored, with its dispatch count and last
// queue sequence; its identity and After are the base's.
type stepDiff struct {
	I          int        `json:"i"`
	State      string     `json:"state"`
	Attempt    int        `json:"attempt,omitempty"`
	Started    *time.Time `json:"started,omitempty"`
	Finished   *time.Time `json:"finished,omitempty"`
	ExitCode   *int       `json:"exit_code,omitempty"`
	Error      string     `json:"error,omitempty"`
	Output     string     `json:"output,omitempty"`
	Stdout     string     `json:"stdout,omitempty"`
	Stderr     string     `json:"stderr,omitempty"`
	Dispatches int        `json:"dispatches,omitempty"`
	Queued     uint64     `json:"queued,omitempty"`
}

// batchDif is batch I's state as stored.
type batchDif struct {
	I     int    `json:"i"`
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}

// stored is what a record's writer last stored of it, to which the next
// flush's change is the difference.
type stored struct {
	head    change
	steps   []stepDiff
	batches []batchDif
}

// stepOf is step i of r as a change stores it.
func (r *Record) stepOf(i int) stepDiff {
	st := r.Steps[i]
	return stepDiff{I: i, State: st.State, Attempt: st.Attempt, Started: st.Started, Finished: st.Finished,
		ExitCode: st.ExitCode, Error: st.Error, Output: st.Output, Stdout: st.Stdout, Stderr: st.Stderr, Dispatches: r.Dispatches[st.ID], Queued: r.Queued[st.ID]}
}

func (r *Record) headOf() change {
	return change{State: r.State, Changed: r.Changed, Finished: r.Finished, Error: r.Error}
}

// snapshotStored is r as it stands, taken as stored.
func (r *Record) snapshotStored() *stored {
	s := &stored{head: r.headOf(), steps: make([]stepDiff, len(r.Steps)), batches: make([]batchDif, len(r.Batches))}
	for i := range r.Steps {
		s.steps[i] = r.stepOf(i)
	}
	for i, b := range r.Batches {
		s.batches[i] = batchDif{I: i, State: b.State, Error: b.Error}
	}
	return s
}

// diff is what changed in r since it was last stored, and whether
// anything did.
func (r *Record) diff() (change, bool) {
	c := r.headOf()
	if r.stored == nil {
		return c, true
	}
	moved := !sameHead(c, r.stored.head)
	for i := range r.Steps {
		if d := r.stepOf(i); !sameStep(d, r.stored.steps[i]) {
			c.Steps = append(c.Steps, d)
		}
	}
	for i, b := range r.Batches {
		if d := (batchDif{I: i, State: b.State, Error: b.Error}); d != r.stored.batches[i] {
			c.Batches = append(c.Batches, d)
		}
	}
	return c, moved || len(c.Steps) > 0 || len(c.Batches) > 0
}

// applyChange brings r up to date with c, a change stored after the
// state r holds. It reports whether c fits r (its indexes are r's).
func (r *Record) applyChange(c change) bool {
	for _, d := range c.Steps {
		if d.I < 0 || d.I >= len(r.Steps) {
			return false
		}
	}
	for _, d := range c.Batches {
		if d.I < 0 || d.I >= len(r.Batches) {
			return false
		}
	}
	r.State, r.Changed, r.Finished, r.Error, r.Writer = c.State, c.Changed, c.Finished, c.Error, c.Writer
	for _, d := range c.Steps {
		st := &r.Steps[d.I]
		st.State, st.Attempt, st.Started, st.Finished, st.ExitCode, st.Error = d.State, d.Attempt, d.Started, d.Finished, d.ExitCode, d.Error
		st.Output, st.Stdout, st.Stderr = d.Output, d.Stdout, d.Stderr
		r.setDispatch(st.ID, d.Dispatches, d.Queued)
	}
	for _, d := range c.Batches {
		r.Batches[d.I].State, r.Batches[d.I].Error = d.State, d.Error
	}
	return true
}

func (r *Record) setDispatch(id string, n int, seq uint64) {
	if n == 0 && seq == 0 {
		delete(r.Dispatches, id)
		delete(r.Queued, id)
		return
	}
	if r.Dispatches == nil {
		r.Dispatches, r.Queued = map[string]int{}, map[string]uint64{}
	}
	r.Dispatches[id], r.Queued[id] = n, seq
}

func sameHead(a, b change) bool {
	return a.State == b.State && a.Changed == b.Changed && a.Error == b.Error && sameTime(a.Finished, b.Finished)
}

func sameStep(a, b stepDiff) bool {
	return a.State == b.State && a.Attempt == b.Attempt && a.Error == b.Error && a.Output == b.Output && a.Stdout == b.Stdout && a.Stderr == b.Stderr && a.Dispatches == b.Dispatches &&
		a.Queued == b.Queued && sameTime(a.Started, b.Started) && sameTime(a.Finished, b.Finished) &&
		(a.ExitCode == nil) == (b.ExitCode == nil) && (a.ExitCode == nil || *a.ExitCode == *b.ExitCode)
}

func sameTime(a, b *time.Time) bool {
	return (a == nil) == (b == nil) && (a == nil || a.Equal(*b))
}
