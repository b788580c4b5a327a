package contract

// PlanRequest asks the planner what a deployment would do
// (de.cmd.deploy.plan). Config is a client's config body exactly as it came
// (base64 in JSON); empty plans the stored config. Nothing is written.
//
//	{"v": 1, "config": "eyJjb21wb25lbnRzIjp7Li4ufX0="}
type PlanRequest struct {
	V      int    `json:"v"`
	Config []byte `json:"config,omitempty"`
}

// Plan is every action a deployment would take, per node, and the drift
// found there. ID hashes the config, the rendered catalog and the node
// state read: a deployment asked to follow a plan refuses when the ID it
// computes then differs. Changes counts the actions.
//
//	{"v": 1, "id": "9f2c...", "changes": 2, "drifted": 0, "nodes": [{"ip": "10.0.0.2",
//	  "actions": [{"component": "web", "action": "upload", "step": "10.0.0.2/web/upload",
//	    "why": "rendered files differ from what the engine wrote",
//	    "files": [{"path": "/var/www/de-web/index.html", "diff": "--- a/var/www/...\n+++ b/...\n@@ ..."}]}],
//	  "drift": []}]}
type Plan struct {
	V       int    `json:"v"`
	ID      string `json:"id"`
	Config  string `json:"config"` // "stored" or "posted"
	Changes int    `json:"changes"`
	Drifted int    `json:"drifted"`
	// Held counts the actions a deployment would hold, their nodes being
	// in maintenance; Changes does not count them.
	Held  int        `json:"held,omitempty"`
	Nodes []PlanNode `json:"nodes"`
}

// PlanNode is one node's part of a plan. Error says why the node could not
// be read: its actions are then what a deploy would try, all of them.
type PlanNode struct {
	IP    string `json:"ip"`
	Error string `json:"error,omitempty"`
	// Held says why the node's actions are held: it is in maintenance
	// (NodeMaintenance.Describe). A deployment then runs none of them.
	Held    string       `json:"held,omitempty"`
	Actions []PlanAction `json:"actions"`
	Drift   []PlanDrift  `json:"drift"`
}

// PlanAction is one step a deployment would run, and why. Files carry a
// unified diff of each file whose content would change; secrets show as
// Redacted, as everywhere the engine renders them.
//
//	{"component": "web", "action": "install", "step": "10.0.0.2/web/install",
//	 "why": "install script changed", "packages": ["nginx-light"], "script": "set -eu\n..."}
type PlanAction struct {
	Component string `json:"component"`
	Action    string `json:"action"`
	Step      string `json:"step"`
	Why       string `json:"why"`
	// Held marks an action its node's maintenance holds back.
	Held     bool       `json:"held,omitempty"`
	Packages []string   `json:"packages,omitempty"`
	Files    []PlanFile `json:"files,omitempty"`
	Script   string     `json:"script,omitempty"`
}

// PlanFile is one file a step would write: its diff against what the engine
// last wrote there (or against nothing for a new file).
type PlanFile struct {
	Path string `json:"path"`
	Diff string `json:"diff"`
}

// PlanDrift is a file on a node that no longer holds what the engine last
// wrote there: changed by hand, or removed. Diff goes from the engine's
// content to the node's. A deployment does not rewrite it unless its step
// changes too.
//
//	{"component": "web", "path": "/etc/de-web/nginx.conf", "want": "3a7b...", "found": "91c0...", "diff": "..."}
type PlanDrift struct {
	Component string `json:"component"`
	Path      string `json:"path"`
	Want      string `json:"want"`
	Found     string `json:"found"` // sha256 on the node, or "missing"
	Diff      string `json:"diff,omitempty"`
}

// DeployStart starts a deployment of the stored config
// (de.cmd.deploy.start). Plan, when set, is the id of a plan the deployment
// must still match (409 otherwise).
//
//	{"v": 1, "plan": "9f2c..."}
type DeployStart struct {
	V    int    `json:"v"`
	Plan string `json:"plan,omitempty"`
	// Canaries, MaxInFlight and AutoRevert override the update settings
	// of the config and the catalog for this deployment.
	Canaries    *int   `json:"canaries,omitempty"`
	MaxInFlight string `json:"max_in_flight,omitempty"`
	AutoRevert  *bool  `json:"auto_revert,omitempty"`
}

// Update is the update settings a DeployStart overrides.
func (d DeployStart) Update() UpdateSettings {
	return UpdateSettings{Canaries: d.Canaries, MaxInFlight: d.MaxInFlight, AutoRevert: d.AutoRevert}
}
