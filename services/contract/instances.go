package contract

// Target names a component instance in a monitor command
// (de.cmd.monitor.hardware, control); "all" and "0.0.0.0" name every
// instance of the config, a component and "0.0.0.0" every one of it.
//
//	{"comp": "web", "ip": "10.0.0.1"}
type Target struct {
	Comp string `json:"comp"`
	IP   string `json:"ip"`
	// MaxInFlight asks a restart to go batch by batch: the API hands such a
	// restart to the planner (RollingRestart), never to the monitor.
	MaxInFlight string `json:"max_in_flight,omitempty"`
}

// StatusEntry is one component instance as GET /status shows it
// (de.cmd.monitor.status answers a list of them): the manual's fields, and
// Reason when it is not RUNNING.
//
//	{"Comp": "web", "Ip": "10.0.0.1", "Cpu": "1.2%", "Mem": "40.1%", "Disk": "8%", "Status": "RUNNING"}
//
// Status is RUNNING, CONFIGURED (a BOSH job without a process), DOWN, or
// MAINTENANCE for every instance of a node in maintenance, whatever it
// does: Reason then says who held the node out, why and since when, and
// what the instance does.
type StatusEntry struct {
	Comp   string `json:"Comp"`
	Ip     string `json:"Ip"` //nolint:revive // the manual's field name
	Cpu    string `json:"Cpu"`
	Mem    string `json:"Mem"`
	Disk   string `json:"Disk"`
	Status string `json:"Status"`
	Reason string `json:"Reason,omitempty"`
}

// Instance statuses in /status.
const (
	StatusRunning     = "RUNNING"
	StatusConfigured  = "CONFIGURED"
	StatusDown        = "DOWN"
	StatusMaintenance = "MAINTENANCE"
)

// InstanceHardware is an instance's node hardware as GET /hardware shows
// it, in the manual's units; Error says why the node could not be read.
//
//	{"Comp": "web", "IP": "10.0.0.1", "CPU": 2, "RAM": 4049952, "DISK": 54988.8}
type InstanceHardware struct {
	Comp  string  `json:"Comp"`
	IP    string  `json:"IP"`
	CPU   int     `json:"CPU"`
	RAM   int64   `json:"RAM"`
	DISK  float64 `json:"DISK"`
	Error string  `json:"Error,omitempty"`
}

// ControlRequest asks the monitor to restart or stop instances
// (de.cmd.monitor.control).
//
//	{"comp": "web", "ip": "10.0.0.1", "action": "restart"}
type ControlRequest struct {
	Target
	Action string `json:"action"`
}

// ControlResult is one instance's outcome of a ControlRequest: Via says
// whether the node's agent or SSH ran it.
type ControlResult struct {
	Comp  string `json:"Comp"`
	Ip    string `json:"Ip"` //nolint:revive // the manual's field name
	OK    bool   `json:"ok"`
	Via   string `json:"via"`
	Error string `json:"error,omitempty"`
}

// ControlOutcome answers a ControlRequest: "status": "ok" when every
// instance did as asked, else the error body (502) with every instance's
// outcome beside it.
//
//	{"results": [{"Comp": "web", "Ip": "10.0.0.1", "ok": true, "via": "agent"}], "status": "ok"}
type ControlOutcome struct {
	Error string `json:"error,omitempty"`
	// ID is the request's correlation id, which the API adds to an error
	// answer as to every other (see ErrorBody).
	ID       string          `json:"id,omitempty"`
	Problems []Problem       `json:"problems,omitempty"`
	Results  []ControlResult `json:"results"`
	Status   string          `json:"status,omitempty"`
}

// SDTarget is one group of Prometheus HTTP service discovery
// (de.cmd.monitor.targets answers a list of them).
//
//	{"targets": ["10.0.0.1:9280"], "labels": {"node": "10.0.0.1"}}
type SDTarget struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// Instance is one instance of the cluster as `bosh instances --ps` shows
// it (GET /deployment-engine/instances): a machine of a deployed manifest's
// instance group, or, without a manifest, a component on a node. Its ID is
// group/index, stable while the instance keeps its machine. State is
// running when every job runs (or is configured), maintenance when its
// node is held out, else failing.
//
//	{"group": "db", "index": 0, "id": "db/0", "az": "z1", "ip": "10.0.0.5", "state": "running",
//	 "jobs": [{"name": "postgres", "status": "RUNNING",
//	           "processes": [{"name": "postgres", "state": "running", "running": true}]}]}
type Instance struct {
	Group string        `json:"group"`
	Index int           `json:"index"`
	ID    string        `json:"id"`
	AZ    string        `json:"az,omitempty"`
	IP    string        `json:"ip"`
	State string        `json:"state"`
	Jobs  []InstanceJob `json:"jobs"`
}

// Instance states.
const (
	InstanceRunning     = "running"
	InstanceFailing     = "failing"
	InstanceMaintenance = "maintenance"
)

// InstanceJob is one job (component) of an instance: its /status entry's
// status and reason, and each of its monit processes as last read.
type InstanceJob struct {
	Name      string         `json:"name"`
	Status    string         `json:"status"`
	Reason    string         `json:"reason,omitempty"`
	Processes []ProcessState `json:"processes"`
}

// ProcessState is one monit process: monit's word for it, and whether it
// runs.
type ProcessState struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Running bool   `json:"running"`
}

// ManifestRecord is what every service may read of the deployed
// manifest's record (bus.KeyManifest): its name, and each instance
// group's machines by index.
type ManifestRecord struct {
	Name      string              `json:"name"`
	Placement map[string][]string `json:"placement"`
}
