package contract

import "time"

// Actors that are not token names.
const (
	// ActorEngine is the engine acting on its own (auto-heal).
	ActorEngine = "engine"
	// ActorAdmin holds the engine's single token (<data>/api-token or
	// DE_API_TOKEN).
	ActorAdmin = "admin"
	// ActorAnonymous is every caller when the API runs with --auth none.
	ActorAnonymous = "anonymous"
	// A schedule's runs act as ScheduleActor(name): "schedule:<name>".
)

// AuditEntry is one change to the cluster, on de.evt.audit.<action>, kept
// in the DE_AUDIT stream: who (the API token's name, or "engine"), what,
// on what, and how it ended. Diff is the config's change, one line per
// changed field, secrets redacted.
//
//	{"v": 1, "time": "...", "actor": "alice", "action": "stop", "object": "web@10.0.0.1",
//	 "component": "web", "ip": "10.0.0.1", "result": "ok", "code": 200}
//	{"v": 1, "time": "...", "actor": "ci", "action": "config", "object": "config", "result": "ok", "code": 201,
//	 "diff": ["+ components.web[1]: \"10.0.0.2\"", "~ properties.domain: \"a.local\" → \"b.local\""]}
type AuditEntry struct {
	V     int       `json:"v"`
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	// Cluster is the cluster the change acted on.
	Cluster string `json:"cluster,omitempty"`
	Action  string `json:"action"`
	Object  string `json:"object"`
	// Component and IP name the instance acted on, when it is one
	// ("all" and "0.0.0.0" for the whole cluster).
	Component string `json:"component,omitempty"`
	IP        string `json:"ip,omitempty"`
	// Deployment is the deployment the change started, if any.
	Deployment string `json:"deployment,omitempty"`
	// Result is "ok" or "failed"; Code the HTTP status the change got;
	// Detail the engine's message.
	Result string   `json:"result"`
	Code   int      `json:"code,omitempty"`
	Detail string   `json:"detail,omitempty"`
	Diff   []string `json:"diff,omitempty"`
}

// Audit actions: the API's changes, then the engine's own.
const (
	AuditConfig   = "config"
	AuditDeploy   = "deploy"
	AuditScale    = "scale"
	AuditRestart  = "restart"
	AuditStop     = "stop"
	AuditHeal     = "heal"
	AuditRelease  = "release"
	AuditRollback = "rollback"
	AuditCancel   = "cancel"
	// AuditPlan is a plan asked for: it renders a release's templates.
	AuditPlan     = "plan"
	AuditTakeover = "takeover"
	// AuditCluster is a cluster made (POST /clusters).
	AuditCluster = "cluster"
	// AuditExec is a command run on nodes: its object is the command.
	AuditExec = "exec"
	// AuditCopy is a file copied to nodes: its object is the direction and
	// the path ("to /etc/motd"), its detail the nodes, never the content.
	AuditCopy = "copy"
	// AuditPatch is a rolling upgrade of the nodes' packages: its detail
	// the nodes, max_in_flight and the reboot policy.
	AuditPatch = "patch"
	// AuditErrand is an errand run: its object is the errand's name.
	AuditErrand = "errand"
	// AuditDisk is an orphaned persistent disk deleted: its object is the
	// node's IP.
	AuditDisk = "disk"
	// AuditMaintenance is a node put in maintenance or taken out.
	AuditMaintenance = "maintenance"
	// AuditSchedule is a schedule created or deleted; AuditScheduleRun one
	// of its runs (started, skipped, missed or failed), whose actor is
	// ScheduleActor(name).
	AuditSchedule    = "schedule"
	AuditScheduleRun = "schedule-run"
	// AuditCloudConfig is the cloud config stored; AuditManifest a BOSH
	// manifest deployed, its object the manifest's name.
	AuditCloudConfig = "cloud-config"
	AuditManifest    = "manifest"
	// AuditResolve is a fix of a problem applied: its object is the
	// problem, its detail the fix.
	AuditResolve = "resolve"
	// AuditCertificate is a certificate of the engine issued again: its
	// object is the certificate's name.
	AuditCertificate = "certificate"
	// AuditRegenerate is a manifest's generated variable marked to be
	// generated anew: its object is the variable's name.
	AuditRegenerate = "regenerate"

	AuditHealRestart  = "heal-restart"
	AuditHealReapply  = "heal-reapply"
	AuditHealFailing  = "heal-failing"
	AuditHealMeltdown = "heal-meltdown"
)
