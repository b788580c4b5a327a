package installer

import (
	"io"
	"sync"
)

// outQueue hands one output stream of a command run through an agent to
// its pipe without ever blocking the reader of the agent's messages: the
// reader of the other stream may wait for this one (a chain's results wait
// until both streams passed the step), as SSH's two channels allow.
type outQueue struct {
	w *io.PipeWriter // nil: the output is discarded

	mu     sync.Mutex
	cond   *sync.Cond
	bufs   [][]byte
	closed bool
}

func newOutQueue(w *io.PipeWriter) *outQueue {
	q := &outQueue{w: w}
	q.cond = sync.NewCond(&q.mu)
	if w != nil {
		go q.drain()
	}
	return q
}

func (q *outQueue) put(b []byte) {
	if q.w == nil {
		return
	}
	q.mu.Lock()
	if !q.closed {
		q.bufs = append(q.bufs, b)
	}
	q.mu.Unlock()
	q.cond.Signal()
}

// close ends the pipe once what was put is read.
func (q *outQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Signal()
}

// abort ends the pipe now, as a closed session does.
func (q *outQueue) abort() {
	q.mu.Lock()
	q.closed, q.bufs = true, nil
	q.mu.Unlock()
	q.cond.Signal()
	if q.w != nil {
		q.w.Close()
	}
}

func (q *outQueue) drain() {
	defer q.w.Close()
	for {
		q.mu.Lock()
		for len(q.bufs) == 0 && !q.closed {
			q.cond.Wait()
		}
		if len(q.bufs) == 0 {
			q.mu.Unlock()
			return
		}
		b := q.bufs[0]
		q.bufs = q.bufs[1:]
		q.mu.Unlock()
		if _, err := q.w.Write(b); err != nil {
			return
		}
	}
}
