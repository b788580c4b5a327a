package engine

import (
	"context"
	"io/fs"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deployment-engine/engine/api/console"
	"github.com/deployment-engine/engine/installer"
	"github.com/deployment-engine/engine/services/bus"
)

// startServices starts the installer, the monitor and the log store.
func startServices(ctx context.Context, o Options, nc *nats.Conn, res *bus.Resources, reg *prometheus.Registry, stops *[]func()) error {
	if o.runs("installer") {
		ins, err := installer.Start(ctx, installer.Options{NC: nc, Res: res, Logger: o.Logger, Port: o.SSHPort})
		if err != nil {
			return err
		}
		*stops = append(*stops, ins.Stop)
		reg.MustRegister(ins.Collectors()...)
	}
	return nil
}

func consoleFS() fs.FS { return console.FS() }
