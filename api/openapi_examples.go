package api

import (
	"reflect"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// examples are the contract's doc-comment examples as Go values, by
// type: the document shows each in its type's schema, and a test holds
// each to that schema.
func examples() map[reflect.Type]any {
	at := time.Date(2026, 11, 24, 22, 39, 5, 0, time.UTC)
	later := at.Add(41 * time.Second)
	exit := 0
	hw := contract.NodeHardware{IP: "10.0.0.1", CPU: 2, RAM: 4049952, DISK: 54988.8}
	ex := []any{
		contract.ErrorBody{Error: "config rejected: 1 problem", ID: "9f2c4e1a7b3d5c60", Problems: []contract.Problem{
			{Path: "components.nats[1]", Component: "nats", IP: "10.0.0.300", Reason: "not an IPv4 address"}}},
		contract.Problem{Path: "components.nats[1]", Component: "nats", IP: "10.0.0.300", Reason: "not an IPv4 address"},
		contract.Config{
			Components: map[string][]string{"haproxy": {"10.0.0.1"}, "nats": {"10.0.0.2", "10.0.0.3"}},
			Properties: contract.Properties{Domain: "cf.local", Disksize: contract.F(15), Checkdisk: contract.F(1), Adduser: contract.F(1),
				User: "vcap", Password: "pw", Root: "123456", Home: "10.0.0.100"},
		},
		contract.ConfigPutReply{V: 1, Stored: true, Checked: true, Hardware: []contract.NodeHardware{hw}},
		contract.PrecheckReply{V: 1, Checked: true, Hardware: []contract.NodeHardware{hw},
			Problems: []contract.Problem{{Path: "components", IP: "10.0.0.2", Reason: "node not reachable: dial tcp 10.0.0.2:22: i/o timeout"}},
			Warnings: []string{"DNS: on node 10.0.0.2, cf.local does not resolve; point it at haproxy (10.0.0.1)"}},
		hw,
		contract.DeployStarted{ID: "d-20261124-223905-1a2b"},
		contract.FleetExecStarted{ID: "d-20261124-223905-1a2b", Command: "systemctl is-active nginx"},
		contract.FleetCopyStarted{ID: "d-20261124-223905-1a2b", To: "/etc/motd", Nodes: []string{"10.0.0.2", "10.0.0.3"}, Size: 6,
			SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"},
		contract.ScaleItem{Comp: "web", Ip: "10.0.0.7"},
		contract.Takeover{V: 1, From: "e-013048c3775d", Nodes: []string{"10.0.0.1"}},
		contract.TakeoverReply{V: 1, From: "e-013048c3775d", Cleared: 1, Nodes: []contract.TakeoverResult{{IP: "10.0.0.1", Owner: "e-013048c3775d", Cleared: true}}},
		contract.PlanAction{Component: "web", Action: "install", Step: "10.0.0.2/web/install", Why: "install script changed",
			Packages: []string{"nginx-light"}, Script: "set -eu\napt-get install -y nginx-light\n"},
		contract.PlanDrift{Component: "web", Path: "/etc/de-web/nginx.conf", Want: "3a7b", Found: "91c0", Diff: "--- engine\n+++ node\n"},
		contract.DeploymentEvent{V: 1, ID: "d-1", State: "succeeded", Changed: 3, Time: later},
		contract.StepEvent{V: 1, Deployment: "d-1", ID: "10.0.0.1/nats/install", Node: "10.0.0.1", Component: "nats",
			Action: "install", State: "succeeded", Attempt: 1, Started: &at, Finished: &later, ExitCode: &exit},
		contract.LogLine{V: 1, Deployment: "d-1", Node: "10.0.0.1", Component: "nats", Step: "10.0.0.1/nats/install",
			Stream: "stdout", Seq: 12, Time: at, Line: "Setting up nats-server ..."},
		contract.StatusEntry{Comp: "web", Ip: "10.0.0.1", Cpu: "1.2%", Mem: "40.1%", Disk: "8%", Status: "RUNNING"},
		contract.InstanceHardware{Comp: "web", IP: "10.0.0.1", CPU: 2, RAM: 4049952, DISK: 54988.8},
		contract.Target{Comp: "web", IP: "10.0.0.1"},
		contract.ControlOutcome{Results: []contract.ControlResult{{Comp: "web", Ip: "10.0.0.1", OK: true, Via: "agent"}}, Status: "ok"},
		contract.SDTarget{Targets: []string{"10.0.0.1:9280"}, Labels: map[string]string{"node": "10.0.0.1"}},
		contract.HealState{Enabled: true, ConfigEnabled: true,
			Meltdown: contract.Meltdown{Active: true, Since: &at, Down: 3, Instances: 4,
				Reason: `3 of 4 instances down within 600 s (more than 20%): healing nothing until PUT /heal {"enabled": true}`},
			Instances: []contract.HealedInstance{{Component: "web", IP: "10.0.0.1", State: "failing", Attempts: 5, Reason: "restart did not bring web back"}}},
		contract.HealSwitched{Enabled: false, Message: "auto-heal disabled by alice"},
		contract.AuditEntry{V: 1, Time: at, Actor: "alice", Action: "stop", Object: "web@10.0.0.1",
			Component: "web", IP: "10.0.0.1", Result: "ok", Code: 200},
		contract.ReleaseSummary{Name: "nats", Version: "56", Jobs: []string{"nats"}, Packages: []string{"gnatsd"}},
		contract.TimingGroup{Name: "10.0.0.1", Steps: 13, BusyS: 20.1, MaxS: 6.2},
		BuildInfo{Version: "v1.4.0", Commit: "1da08ac", Built: "2026-11-26T16:20:00Z"},
	}
	out := make(map[reflect.Type]any, len(ex))
	for _, v := range ex {
		out[reflect.TypeOf(v)] = v
	}
	return out
}
