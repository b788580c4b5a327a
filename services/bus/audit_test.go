package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// The trail is read-your-writes: once PublishAudit returns, DE_AUDIT (which
// sources its entries from DE_EVENTS a moment after the publish) already
// holds the entry, every time, also with many in a row on one subject.
func TestPublishAuditIsInTheTrailOnReturn(t *testing.T) {
	ctx := context.Background()
	s := bustest.Start(t, bus.ServerOptions{})
	for i := range 50 {
		e := contract.AuditEntry{Actor: "admin", Action: "copy", Object: fmt.Sprint("to /opt/f", i), Code: 202}
		if err := bus.PublishAudit(ctx, s.Res.JS, e); err != nil {
			t.Fatal(err)
		}
		m, err := s.Res.Audit.GetLastMsgForSubject(ctx, subject.Audit("copy"))
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		var got contract.AuditEntry
		if err := json.Unmarshal(m.Data, &got); err != nil || got.Object != e.Object {
			t.Fatalf("entry %d: the trail's last entry is %q (%v), want %q", i, got.Object, err, e.Object)
		}
	}
}
