package api

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// The audit trail is read whole, over several fetches, with or without a
// filter, by clients asking at once; and each read leaves no consumer on
// the stream behind it (a client polling the trail used to pile them up).
func TestAuditReadIsWholeAndLeavesNoConsumer(t *testing.T) {
	b := bustest.Start(t, bus.ServerOptions{})
	ctx := context.Background()
	const total = 1300
	for i := range total {
		action := contract.AuditDeploy
		if i%7 == 0 {
			action = contract.AuditStop
		}
		e, _ := json.Marshal(contract.AuditEntry{Actor: "alice", Action: action})
		if _, err := b.Res.JS.Publish(ctx, subject.Audit(action), e); err != nil {
			t.Fatal(err)
		}
	}
	st, err := b.Res.JS.Stream(ctx, bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	// The audit stream sources the events stream: wait until it has all.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := st.Info(ctx)
		if err == nil && info.State.Msgs == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit stream holds %+v, want %d entries", info, total)
		}
	}
	s := &server{js: b.Res.JS}
	want := map[string]int{"": total, contract.AuditStop: (total + 6) / 7, contract.AuditRestart: 0}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				for action, n := range want {
					out, err := s.readAudit(ctx, auditQuery{action: action, limit: maxAudit})
					if err != nil || len(out) != n {
						t.Errorf("action %q: %d entries, %v; want %d", action, len(out), err, n)
					}
				}
			}
		}()
	}
	wg.Wait()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("%d consumers left on %s after 120 reads, want 0", info.State.Consumers, bus.StreamAudit)
	}
}
