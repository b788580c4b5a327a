package contract

// Version of every message body; a reader refuses bodies newer than it knows.
const Version = 1

// StepVersionSealed is the version of a step message whose files are
// sealed (StepFile.Sealed): an installer that reads only Version refuses
// it, where it would otherwise write the sealed bytes to the node.
const StepVersionSealed = 2

// ConfigPut asks the planner to validate, check and store a config
// (de.cmd.config.put). Config is the client's body exactly as it came
// (base64 in JSON, so that even malformed JSON reaches the planner, which
// names the error); Check says whether to contact the nodes (POST ?check=0
// turns it off).
//
//	{"v": 1, "config": "eyJjb21wb25lbnRzIjp7Li4ufX0=", "check": true}
type ConfigPut struct {
	V      int    `json:"v"`
	Config []byte `json:"config"`
	Check  bool   `json:"check"`
}

// ConfigPutReply is the answer to a stored config: each node's hardware when
// checks ran.
//
//	{"v": 1, "stored": true, "hardware": [{"IP": "10.0.0.1", "CPU": 2, "RAM": 4049952, "DISK": 54988.8}]}
type ConfigPutReply struct {
	V        int            `json:"v"`
	Stored   bool           `json:"stored"`
	Checked  bool           `json:"checked"`
	Hardware []NodeHardware `json:"hardware,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
}

// PrecheckReply is every pre-check run again on the stored config
// (de.cmd.config.precheck, GET /deployment-engine/precheck): what would
// refuse the config (problems) and what only warns.
//
//	{"v": 1, "checked": true, "hardware": [...], "problems": [{"path": "components", "ip": "10.0.0.2", "reason": "node not reachable: ..."}],
//	 "warnings": ["DNS: on node 10.0.0.2, cf.local does not resolve; point it at haproxy (10.0.0.1)"]}
type PrecheckReply struct {
	V        int            `json:"v"`
	Checked  bool           `json:"checked"`
	Hardware []NodeHardware `json:"hardware"`
	Problems []Problem      `json:"problems"`
	Warnings []string       `json:"warnings"`
}

// NodeHardware is what a node has, in the manual's units: CPU cores, RAM in
// KiB, DISK in MB.
//
//	{"IP": "10.0.0.1", "CPU": 2, "RAM": 4049952, "DISK": 54988.8}
type NodeHardware struct {
	IP   string  `json:"IP"`
	CPU  int     `json:"CPU"`
	RAM  int64   `json:"RAM"`
	DISK float64 `json:"DISK"`
}

// DiskMB turns KiB into the manual's DISK unit: MB, with one decimal.
func DiskMB(kib int64) float64 { return float64(kib*10/1024) / 10 }
