package heal

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/deployment-engine/engine/monitor/heal/policy"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Two writers of the heal state race: another one stores the state behind
// the healer's back. The healer's next write, computed from the revision
// before, is refused; it merges with what the other stored instead of
// writing over it.
func TestStaleStateWriteIsMerged(t *testing.T) {
	b, c, _ := start(t, `{"grace_s": 30}`)
	ctx := context.Background()
	time.Sleep(500 * time.Millisecond)
	stop := func(ip string) {
		e, _ := json.Marshal(contract.AuditEntry{V: 1, Actor: "alice", Action: contract.AuditStop, Component: "web", IP: ip, Result: "ok", Code: 200})
		if _, err := b.Res.JS.Publish(ctx, subject.Audit(contract.AuditStop), e); err != nil {
			t.Fatal(err)
		}
		c.kill(ip)
	}
	stored := func() (policy.State, uint64) {
		e, err := b.Res.Engine.Get(ctx, stateKey)
		if err != nil {
			return policy.State{}, 0
		}
		var st policy.State
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			t.Fatal(err)
		}
		return st, e.Revision()
	}
	stop("10.9.0.3")
	eventually(t, 5*time.Second, "the healer's hold stored", func() bool {
		st, _ := stored()
		_, ok := st.Held["web@10.9.0.3"]
		return ok
	})

	// The other writer: a hold of its own, at the revision it read.
	st, rev := stored()
	st.Held["web@10.9.0.4"] = time.Now()
	c.kill("10.9.0.4")
	data, _ := json.Marshal(st)
	if _, err := b.Res.Engine.Update(ctx, stateKey, data, rev); err != nil {
		t.Fatal(err)
	}

	stop("10.9.0.1")
	want := []string{"web@10.9.0.1", "web@10.9.0.3", "web@10.9.0.4"}
	eventually(t, 5*time.Second, "both writers' holds stored", func() bool {
		st, _ := stored()
		for _, k := range want {
			if _, ok := st.Held[k]; !ok {
				return false
			}
		}
		return len(st.Held) == len(want)
	})
	// And the healer took the other's hold as its own.
	if n := heldCount(state(t, b)); n != 3 {
		t.Fatalf("GET /heal holds %d instances, want 3", n)
	}
}

// heldCount is how many instances GET /heal shows held.
func heldCount(s contract.HealState) int {
	n := 0
	for _, in := range s.Instances {
		if in.State == contract.HealHeld {
			n++
		}
	}
	return n
}
