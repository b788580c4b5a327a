package preview

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/deployment-engine/engine/services/nodeclient"
)

// ReadNodes runs a read-only script on every node at once through the
// installer, each bounded by timeout; a node that was not read says why
// in its Read's Err.
func ReadNodes(ctx context.Context, nc *nats.Conn, nodes []string, script func(ip string) string, timeout time.Duration) map[string]Read {
	out := make(map[string]Read, len(nodes))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ip := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := readNode(ctx, nc, ip, script(ip), timeout)
			mu.Lock()
			out[ip] = r
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func readNode(ctx context.Context, nc *nats.Conn, ip, script string, timeout time.Duration) Read {
	r := Read{Markers: map[string]string{}}
	x, err := nodeclient.Exec(ctx, nc, ip, script, timeout)
	var answered *nodeclient.AnswerError
	switch {
	case errors.As(err, &answered):
		r.Err = fmt.Sprintf("not read (%d): %s", answered.Code, answered.Msg)
	case err != nil:
		r.Err = "not read: " + err.Error()
	case x.Error != "" || x.ExitCode != 0:
		r.Err = fmt.Sprintf("not read: %s (exit %d)", x.Error, x.ExitCode)
	default:
		return ParseRead(x.Output, strings.Contains(script, "echo end"))
	}
	return r
}
