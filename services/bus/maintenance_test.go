package bus_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/bus/bustest"
	"github.com/deployment-engine/engine/services/contract"
)

// Writers that race keep every node they put in maintenance: the record is
// written compare-and-set and a refused write is made again on the new one.
func TestMaintenanceWritersRace(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t, bus.ServerOptions{})
	m, rev, err := bus.LoadMaintenance(ctx, b.Res.Engine)
	if err != nil || rev != 0 || len(m.Nodes) != 0 {
		t.Fatalf("fresh store: %+v rev %d err %v", m, rev, err)
	}
	ips := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
	var wg sync.WaitGroup
	errs := make(chan error, len(ips))
	for _, ip := range ips {
		wg.Go(func() {
			_, err := bus.UpdateMaintenance(ctx, b.Res.Engine, func(m *contract.Maintenances) error {
				m.Nodes[ip] = contract.NodeMaintenance{IP: ip, On: true, Actor: "t"}
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	m, _, err = bus.LoadMaintenance(ctx, b.Res.Engine)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		if !m.Holds(ip) {
			t.Errorf("%s lost: %+v", ip, m.Nodes)
		}
	}
	refused := errors.New("no")
	if _, err := bus.UpdateMaintenance(ctx, b.Res.Engine, func(m *contract.Maintenances) error {
		delete(m.Nodes, "10.0.0.1")
		return refused
	}); !errors.Is(err, refused) {
		t.Fatalf("a refused change: %v", err)
	}
	if m, _, _ := bus.LoadMaintenance(ctx, b.Res.Engine); !m.Holds("10.0.0.1") {
		t.Fatal("a refused change was written")
	}
}
