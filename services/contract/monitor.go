package contract

import "time"

// AgentComponent is one component the agent on a node watches: its monit
// process name and the log files it follows. A BOSH job may run several
// processes: Processes lists them all (Process is the first); a catalog's
// component has one, in Process alone.
//
//	{"name": "web", "process": "web", "logs": ["/var/log/de-web/error.log"]}
//	{"name": "metron-agent", "process": "metron", "processes": ["metron", "forwarder"]}
type AgentComponent struct {
	Name      string   `json:"name"`
	Process   string   `json:"process"`
	Processes []string `json:"processes,omitempty"`
	Logs      []string `json:"logs,omitempty"`
}

// AllProcesses lists every monit process of the component: none for a
// component that only configures.
func (c AgentComponent) AllProcesses() []string {
	if len(c.Processes) > 0 {
		return c.Processes
	}
	if c.Process != "" {
		return []string{c.Process}
	}
	return nil
}

// AgentConfig is the node agent's config file, written by the deployment
// that installs the agent (/var/lib/deployment-engine/agent.json).
//
//	{"v": 1, "ip": "10.0.0.1", "nats": "nats://10.0.0.254:4222", "user": "node-10-0-0-1",
//	 "password_file": "/var/lib/deployment-engine/agent.pass", "listen": ":9280", "interval_s": 5,
//	 "components": [{"name": "web", "process": "web", "logs": ["/var/log/de-web/error.log"]}]}
type AgentConfig struct {
	V            int    `json:"v"`
	IP           string `json:"ip"`
	NATS         string `json:"nats"`
	User         string `json:"user"`
	PasswordFile string `json:"password_file"`
	// CA is the PEM certificate the engine's NATS presents, or the CA that
	// issued it (the old CA and the new while the agents' CA rotates): the
	// agent connects over TLS and trusts those alone. Empty: plain.
	CA         string           `json:"ca,omitempty"`
	Listen     string           `json:"listen,omitempty"`
	IntervalS  int              `json:"interval_s,omitempty"`
	Components []AgentComponent `json:"components"`
}

// ComponentState is one component's monit processes as the agent last
// read them. Monit is monit's own word for the process ("running", "not
// monitored", ...); with several processes, that of the first one down,
// after its name ("worker: not monitored"). Running says every process
// runs; Reason, when set, says why one runs though monit does not say so
// ("stop failed: ..."). Processes lists them all when there are several.
type ComponentState struct {
	Name      string   `json:"name"`
	Process   string   `json:"process"`
	Processes []string `json:"processes,omitempty"`
	Monit     string   `json:"monit"`
	Running   bool     `json:"running"`
	Reason    string   `json:"reason,omitempty"`
	// Procs is each process as the agent read it (GET /instances).
	Procs []ProcessState `json:"procs,omitempty"`
}

// AllProcesses lists every monit process of the component's state.
func (c ComponentState) AllProcesses() []string {
	return AgentComponent{Process: c.Process, Processes: c.Processes}.AllProcesses()
}

// Heartbeat is the agent's periodic report on de.node.<ip>.heartbeat:
// hardware in the manual's units, usage in percent, every component's
// state. MonitError holds monit's complaint when it could not be read;
// Version is the agent binary's build version, the engine's own when the
// engine served it.
//
//	{"v": 1, "ip": "10.0.0.1", "hostname": "n1", "time": "...", "interval_s": 5, "version": "v1.4.0",
//	 "hardware": {"IP": "10.0.0.1", "CPU": 2, "RAM": 4049952, "DISK": 54988.8},
//	 "cpu_pct": 1.2, "mem_pct": 40.1, "disk_pct": 8,
//	 "components": [{"name": "web", "process": "web", "monit": "running", "running": true}]}
type Heartbeat struct {
	V          int              `json:"v"`
	IP         string           `json:"ip"`
	Hostname   string           `json:"hostname"`
	Time       time.Time        `json:"time"`
	IntervalS  int              `json:"interval_s"`
	Hardware   NodeHardware     `json:"hardware"`
	CPUPct     float64          `json:"cpu_pct"`
	MemPct     float64          `json:"mem_pct"`
	DiskPct    float64          `json:"disk_pct"`
	Components []ComponentState `json:"components"`
	MonitError string           `json:"monit_error,omitempty"`
	Version    string           `json:"version,omitempty"`
}

// Control asks an agent (de.node.<ip>.control) or, without one, the
// installer over SSH to run `monit <action> <process>` and wait, at most
// TimeoutS seconds (0: the action's default), for its outcome.
//
//	{"v": 1, "action": "restart", "process": "web", "timeout_s": 90}
type Control struct {
	V        int    `json:"v"`
	Action   string `json:"action"`
	Process  string `json:"process"`
	TimeoutS int    `json:"timeout_s,omitempty"`
}

// ControlReply is the outcome of a Control.
type ControlReply struct {
	V      int    `json:"v"`
	OK     bool   `json:"ok"`
	Output string `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Exec asks the installer to run a short script on a node over SSH with the
// config's credentials (de.cmd.installer.exec). Scripts are the engine's
// own, never a client's.
type Exec struct {
	V        int    `json:"v"`
	Node     string `json:"node"`
	Script   string `json:"script"`
	TimeoutS int    `json:"timeout_s"`
}

// ExecReply is an Exec's outcome: Output is stdout, cut at 1 MiB.
// TimedOut says the node took the script but did not finish it within
// its TimeoutS (killed there): a node busy or frozen, not one that refused.
type ExecReply struct {
	V        int    `json:"v"`
	ExitCode int    `json:"exit_code"`
	Output   string `json:"output"`
	Error    string `json:"error,omitempty"`
	TimedOut bool   `json:"timed_out,omitempty"`
}

// EngineEvent is an operation of the engine on de.evt.engine.<kind>: what
// the operations log (local.log) records.
//
//	{"v": 1, "kind": "restart", "time": "...", "message": "restart web on 10.0.0.1: ok"}
type EngineEvent struct {
	V       int       `json:"v"`
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	Message string    `json:"message"`
	// Certificate is the certificate an event of kind EventCertificate
	// is about, and WarnDays the threshold it passed.
	Certificate *Certificate `json:"certificate,omitempty"`
	WarnDays    int          `json:"warn_days,omitempty"`
}

// ComponentEvent is published on de.evt.component.<name>.<ip>.up|down when
// a component instance changes state.
type ComponentEvent struct {
	V         int       `json:"v"`
	Component string    `json:"component"`
	IP        string    `json:"ip"`
	Up        bool      `json:"up"`
	Time      time.Time `json:"time"`
	Reason    string    `json:"reason,omitempty"`
}
