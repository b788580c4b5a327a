package planner

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/deployment-engine/engine/planner/validate"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/kit"
)

// decodeScale accepts one item or a list, with keys in any case.
func decodeScale(b []byte) ([]contract.ScaleItem, error) {
	var raw any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("malformed JSON: %v", err)
	}
	var list []any
	switch v := raw.(type) {
	case []any:
		list = v
	case map[string]any:
		list = []any{v}
	default:
		return nil, fmt.Errorf(`want {"Comp": "...", "Ip": "..."} or a list of them`)
	}
	var out []contract.ScaleItem
	for i, x := range list {
		m, ok := x.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("item %d: want an object with Comp and Ip", i)
		}
		var it contract.ScaleItem
		for k, v := range m {
			s, _ := v.(string)
			switch strings.ToLower(k) {
			case "comp", "component", "name":
				it.Comp = s
			case "ip":
				it.Ip = s
			}
		}
		if it.Comp == "" || it.Ip == "" {
			return nil, fmt.Errorf("item %d: needs both Comp and Ip as strings", i)
		}
		out = append(out, it)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("nothing to add")
	}
	return out, nil
}

// scale adds instances to the stored config, checks the new nodes, stores
// the config and starts the deployment that installs them. Like a deploy,
// it checks the nodes without the planner's lock, and stores and begins
// under it only while the config it added to is still the stored one.
// putBack stores cfg again after a command that wrote another config at
// rev could not begin its deployment, unless another request stored one
// since. It outlives the command's ctx (a Stop may be why it failed),
// within a bound.
func (p *Planner) putBack(ctx context.Context, cfg contract.Config, rev uint64, what string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := p.storeConfigAt(ctx, cfg, rev); err != nil {
		p.log.Error("put the config back after a "+what+" that did not begin", "err", err)
	}
}

func (p *Planner) scale(ctx context.Context, req micro.Request) (int, any, error) {
	items, err := decodeScale(req.Data())
	if err != nil {
		return 0, nil, &kit.Error{Code: 400, Msg: err.Error()}
	}
	cfg, err := p.storedConfig(ctx)
	if err != nil {
		return 0, nil, err
	}
	next := cfg.Clone()
	var fresh []string
	for _, it := range items {
		if slices.Contains(next.Components[it.Comp], it.Ip) {
			return 0, nil, rejected([]contract.Problem{{Path: "components." + it.Comp, Component: it.Comp, IP: it.Ip, Reason: "already has an instance on this IP"}})
		}
		next.Components[it.Comp] = append(next.Components[it.Comp], it.Ip)
		if !slices.Contains(cfg.Nodes(), it.Ip) {
			fresh = append(fresh, it.Ip)
		}
	}
	// Validate the result exactly like a posted config.
	b, _ := json.Marshal(next)
	if _, problems := validate.Config(b, p.catalogsIn(ctx), validate.Webhooks(p.o.Webhooks)); len(problems) > 0 {
		return 0, nil, rejected(problems)
	}
	// A node new to the config gets no kept secret it was not given for.
	if _, problems, err := p.secretHosts(ctx, next, nil); err != nil {
		return 0, nil, err
	} else if len(problems) > 0 {
		return 0, nil, rejected(problems)
	}
	if len(fresh) > 0 {
		sub := next.Clone()
		for name, ips := range sub.Components {
			var keep []string
			for _, ip := range ips {
				if slices.Contains(fresh, ip) {
					keep = append(keep, ip)
				}
			}
			if keep == nil {
				delete(sub.Components, name)
			} else {
				sub.Components[name] = keep
			}
		}
		_, _, problems, err := p.precheck(ctx, sub)
		if err != nil {
			return 0, nil, err
		}
		if len(problems) > 0 {
			return 0, nil, rejected(problems)
		}
	}
	if id, ok := p.sched.Running(); ok {
		return 0, nil, &kit.Error{Code: 409, Msg: fmt.Sprintf("deployment %s is still running; scale when it has finished", id)}
	}
	// Every node is checked and the deployment planned before anything is
	// stored: a scale that fails leaves the stored config as it was.
	rec, err := p.prepareWith(ctx, next, contract.UpdateSettings{})
	if err != nil {
		return 0, nil, err
	}
	// The config is written on the revision it was checked at, without the
	// planner's lock: another write since is a 409 (compare-and-set).
	rev, err := p.currentRev(ctx, cfg)
	if err != nil {
		return 0, nil, err
	}
	rev, err = p.storeConfigAt(ctx, next, rev)
	if err != nil {
		return 0, nil, err
	}
	p.mu.Lock()
	id, err := p.beginLocked(ctx, rec, &next)
	p.mu.Unlock()
	if err != nil {
		p.putBack(ctx, cfg, rev, "scale")
		return 0, nil, err
	}
	return 202, contract.DeployStarted{ID: id}, nil
}
