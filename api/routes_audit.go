package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// maxAudit bounds one answer of the audit trail: the newest entries win.
const maxAudit = 10000

// auditQuery is GET /audit's query, checked.
type auditQuery struct {
	since         time.Time
	actor, action string
	limit         int
}

func parseAuditQuery(q map[string][]string, now time.Time) (auditQuery, string) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	a := auditQuery{actor: get("actor"), action: get("action"), limit: 1000}
	if v := get("since"); v != "" {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			a.since = t
		} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
			a.since = now.Add(-d)
		} else {
			return a, "since: want an RFC 3339 time (2026-11-26T16:00:00Z) or a duration back from now (90m)"
		}
	}
	if a.action != "" && !subject.ValidToken(a.action) {
		return a, "action: no such action " + strconv.Quote(a.action)
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAudit {
			return a, fmt.Sprintf("limit: want a number from 1 to %d", maxAudit)
		}
		a.limit = n
	}
	return a, ""
}

// auditList answers the audit trail, oldest first: the newest `limit`
// entries since `since`, of one actor and one action when asked.
func (s *server) auditList(w http.ResponseWriter, r *http.Request) {
	q, problem := parseAuditQuery(r.URL.Query(), time.Now())
	if problem != "" {
		writeError(w, http.StatusBadRequest, problem)
		return
	}
	out, err := s.readAudit(r.Context(), q)
	if err != nil {
		s.log.Error("read the audit trail", "err", err)
		writeError(w, http.StatusServiceUnavailable, "cannot read the audit trail; check the engine's log")
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *server) readAudit(ctx context.Context, q auditQuery) ([]contract.AuditEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return nil, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, err
	}
	out := []contract.AuditEntry{}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return out, nil
	}
	// One ephemeral consumer reads the trail and is deleted at the end. An
	// ordered consumer would make a consumer per fetch and leave the last
	// one behind for minutes: a client asking often piled them up.
	cfg := jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckNonePolicy,
		MemoryStorage: true, InactiveThreshold: time.Minute}
	if !q.since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &q.since
	}
	if q.action != "" {
		cfg.FilterSubject = subject.Audit(q.action)
	}
	cons, err := st.CreateConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer dcancel()
		_ = st.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	// The trail is read to its end as it was when the read began: the
	// last message of the stream then, or the last one matching the
	// filter (none pending after it), or none when the consumer says
	// nothing matches. A fetch takes what the server has ready; one that
	// comes back empty while entries are pending is tried again.
	pending := cons.CachedInfo().NumPending
	for pending > 0 {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return nil, err
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err == nil && (meta.Sequence.Stream >= last || meta.NumPending == 0) {
				done = true
			}
			var e contract.AuditEntry
			if json.Unmarshal(m.Data(), &e) != nil || (q.actor != "" && e.Actor != q.actor) {
				continue
			}
			out = append(out, e)
			if len(out) > q.limit {
				out = out[1:]
			}
		}
		if done {
			break
		}
		if n == 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("read %s: %w", bus.StreamAudit, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	return out, nil
}
