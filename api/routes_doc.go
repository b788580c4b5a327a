package api

import (
	"fmt"
	"net/http"
	"reflect"

	"github.com/deployment-engine/engine/services/contract"
)

// opDoc describes a route for the OpenAPI document (openapi.go): what it
// reads and every answer it gives. The refusals every route of the table
// shares (401, 403 to a token below the route's role or that does not
// reach its cluster, 429, 503 while the store is down, 400 and 413 to a
// body it cannot read, 504 and 500 of a command) are added from what the
// route declares; errs are its own.
type opDoc struct {
	id, summary, desc string
	query             []param
	body              *bodyDoc
	ok                []reply
	errs              []reply
	// bus: the route sends a command on the bus, answered 504 when its
	// service does not answer in time and 500 when the service fails.
	bus bool
}

// param is a query parameter.
type param struct {
	name, desc string
	schema     schemaObj
}

// bodyDoc is a request body: JSON of typ unless media says otherwise.
type bodyDoc struct {
	typ      reflect.Type
	schema   schemaObj
	media    string
	desc     string
	optional bool
	// streamed: the body goes to its store as it comes, unread by the
	// API (no 413 at MaxBody: the store has its own bound).
	streamed bool
	// limit is the route's bound on the body when not MaxBody.
	limit int64
}

// reply is one answer: JSON of typ (or of schema), or a body of media. A
// reflect.Type within schema stands for that type's schema.
type reply struct {
	code   int
	desc   string
	typ    reflect.Type
	schema schemaObj
	media  string
	// events are a text/event-stream's events, by name.
	events map[string]reflect.Type
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

func body[T any](desc string) *bodyDoc { return &bodyDoc{typ: typeOf[T](), desc: desc} }

func ok[T any](code int, desc string) reply { return reply{code: code, desc: desc, typ: typeOf[T]()} }

// fails is an error answer with the engine's error body.
func fails(code int, desc string) reply { return ok[contract.ErrorBody](code, desc) }

var (
	noConfig   = fails(http.StatusForbidden, "no config has been submitted yet")
	noDeploy   = fails(http.StatusNotFound, "no deployment has this id")
	noNode     = fails(http.StatusNotFound, "not an IP, or a node neither in the config nor in maintenance")
	noSchedule = fails(http.StatusNotFound, "no schedule has this name")
	unreadable = fails(http.StatusBadRequest, "the body is not what the route takes: the error says why, problems name each field at fault")
	nodesFail  = fails(http.StatusBadGateway, "a node could not be reached or did not do as asked")
	conflict   = fails(http.StatusConflict, "a deployment runs, or the config or the nodes changed meanwhile: the error says which")
	str        = schemaObj{"type": "string"}
)

// deployQuery are a deploy's options.
var deployQuery = []param{
	{"plan", "the id of a plan (POST /plan) the deployment must still match: 409 when it no longer does", schemaObj{"type": "string", "pattern": "^[0-9a-f]{1,64}$"}},
	{"canaries", "instances updated first, one at a time, overriding the config's update settings", schemaObj{"type": "integer", "minimum": 0}},
	{"max_in_flight", `instances updated at once after the canaries: a number or a percentage ("50%")`, str},
	{"auto_revert", "re-apply what the changed instances ran before when a canary or batch fails", schemaObj{"type": "boolean"}},
}

// stepsQuery asks a deployment for its summary and a page of its steps
// (contract.StepQuery).
var stepsQuery = []param{
	{"steps", `"0" for no step (the summary alone), "all", or step states, comma-separated ("failed,running")`, str},
	{"summary", `"1": the summary alone (as steps=0): counts per state and per component, the first failed steps, no step list`,
		// A pattern, not an enum: a second enum of "0" and "1" would rename
		// the generated client's constants of check's (N0, N1).
		schemaObj{"type": "string", "pattern": "^[01]$"}},
	{"offset", "the first step of the page, counted among the steps asked for", schemaObj{"type": "integer", "minimum": 0, "maximum": contract.MaxStepOffset}},
	{"limit", fmt.Sprintf("steps per page (default %d)", contract.DefaultStepPage), schemaObj{"type": "integer", "minimum": 1, "maximum": contract.MaxStepPage}},
}

// targetQuery names an instance without a body.
var targetQuery = []param{
	{"comp", `the component ("all" for every one); also spelt name or component`, str},
	{"ip", `the node's IP ("0.0.0.0" for every node of the component)`, str},
}

var deployStarted = ok[contract.DeployStarted](http.StatusAccepted, "the deployment started: follow it at /deployments/{id}")

// routeDocs describes the table's routes (routes.go), by method and
// pattern; a route without one fails TestEveryRouteIsDocumented.
var routeDocs = map[string]opDoc{
	"GET /config": {id: "getConfig", summary: "The stored config, its secrets redacted", bus: true,
		ok: []reply{ok[contract.Config](200, "the config")}, errs: []reply{fails(404, "no config has been submitted yet")}},
	"POST /config": {id: "postConfig", summary: "Validate, check on its nodes and store a config", bus: true,
		desc:  "Secrets sent as \"<redacted>\" keep the stored ones. The nodes are contacted first (hardware, OS, DNS, the way back to the engine) unless check=0.",
		query: []param{{"check", "0 stores the config without contacting its nodes", schemaObj{"type": "string", "enum": []string{"0", "1"}}}},
		body:  body[contract.Config]("the cluster: components and their IPs, and properties"),
		ok:    []reply{ok[contract.ConfigPutReply](201, "stored, with each node's hardware when checked")},
		errs:  []reply{unreadable, fails(409, "another config was stored while this one was checked")}},
	"GET /config/schema": {id: "getConfigSchema", summary: "The config's JSON Schema, for editors", bus: true,
		ok: []reply{{code: 200, desc: "a JSON Schema of the config, with the catalogs' components", schema: schemaObj{"type": "object"}}}},
	"GET /config/history": {id: "getConfigHistory", summary: "The configs deployments applied, newest first, secrets redacted", bus: true,
		ok: []reply{ok[[]contract.HistoryEntry](200, "the history")}},
	"GET /cloud-config": {id: "getCloudConfig", summary: "The cloud config: the machines a manifest's instances go on", bus: true,
		ok: []reply{ok[contract.CloudConfig](200, "the cloud config")}, errs: []reply{fails(404, "no cloud config has been stored yet")}},
	"PUT /cloud-config": {id: "putCloudConfig", summary: "Store the cloud config", bus: true,
		desc: "The body is YAML or JSON (YAML reads JSON): home, ssh {user, key}, azs [{name, machines: [IP | {ip, user, key}]}], disks {IP: device}. " +
			"It is checked whole: IPs parse, a machine is in one zone, names are bounded, a key is a path on the engine's machine (never the key), and an unknown key is refused by name.",
		body: &bodyDoc{typ: typeOf[contract.CloudConfig](), desc: "the cloud config, as YAML or JSON"},
		ok:   []reply{ok[contract.CloudConfig](200, "stored, as read")},
		errs: []reply{unreadable}},
	"POST /manifest": {id: "deployManifest", summary: "Deploy a BOSH deployment manifest on the cloud config's machines", bus: true,
		desc: "Ops files are applied in order, then the manifest's variables are interpolated: the values given win, the ones the engine generated " +
			"before are read again, the declared ones still missing are generated once and kept sealed in the engine's store; no answer shows them. " +
			"Each instance goes on its static IP's machine or on a free machine of its zones, the same one deploy after deploy. The config is " +
			"then stored as POST /config stores one (checked on its nodes unless check=0) and its deployment started. The manifest's name names its " +
			"cluster: a named cluster refuses a manifest of another name (400); the default cluster takes any.",
		// A pattern, not an enum: a second enum of the same values would
		// rename POST /config's constants in generated clients.
		query: []param{{"check", "0 stores the config without contacting its nodes", schemaObj{"type": "string", "pattern": "^[01]$"}}},
		body:  body[contract.ManifestDeploy]("the manifest's YAML, its ops files' YAML in order, and values of variables"),
		ok:    []reply{ok[contract.ManifestDeployed](http.StatusAccepted, "stored and started: follow the deployment at /deployments/{id}")},
		errs: []reply{unreadable, fails(http.StatusForbidden, "no cloud config has been stored yet"),
			conflict, nodesFail}},
	"GET /manifest/variables": {id: "listManifestVariables", summary: "The variables the engine generated for the deployed manifest, never a value", bus: true,
		ok: []reply{ok[contract.ManifestVariables](200, "each generated variable: its type, the CA that signed it, when it was generated, whether the next manifest deploy generates it anew")}},
	"POST /manifest/variables/{name}/regenerate": {id: "regenerateManifestVariable", summary: "Have a generated variable generated anew at the next manifest deploy", bus: true,
		desc: "The value stays until the next manifest deploy, which generates it anew, with every certificate its CA chain signs, and deploys the result. " +
			"A variable whose type or options changed in the manifest keeps its value (its deploy warns): this is how to have it follow them.",
		ok:   []reply{ok[contract.ManifestRegenerated](200, "marked, with the certificates it signs")},
		errs: []reply{fails(http.StatusNotFound, "the engine generated no such variable: the error names those it did")}},
	"GET /precheck": {id: "precheck", summary: "Every pre-check again on the stored config", bus: true,
		ok: []reply{ok[contract.PrecheckReply](200, "the problems that would refuse the config, and the warnings")}, errs: []reply{noConfig}},

	"GET /deploy": {id: "deployByGet", summary: "Deploy the stored config (the manual's GET)", bus: true, query: deployQuery,
		ok: []reply{deployStarted}, errs: []reply{fails(400, "a query parameter is malformed"), noConfig, conflict, nodesFail}},
	"POST /deploy": {id: "deploy", summary: "Deploy the stored config", bus: true, query: deployQuery,
		ok: []reply{deployStarted}, errs: []reply{fails(400, "a query parameter is malformed"), noConfig, conflict, nodesFail}},
	"POST /scale": {id: "scale", summary: "Add instances to the stored config and deploy them", bus: true,
		body: &bodyDoc{desc: "one instance, or a list of them", schema: schemaObj{"oneOf": []any{
			typeOf[contract.ScaleItem](),
			schemaObj{"type": "array", "items": typeOf[contract.ScaleItem](), "minItems": 1}}}},
		ok: []reply{deployStarted}, errs: []reply{unreadable, noConfig, conflict, nodesFail}},
	"POST /rollback": {id: "rollback", summary: "Deploy the last config whose deployment succeeded again", bus: true,
		ok: []reply{deployStarted}, errs: []reply{noConfig, fails(409, "a deployment runs, or no earlier config succeeded"), nodesFail}},
	"POST /takeover": {id: "takeover", summary: "Clear the claim an engine that no longer runs left on the nodes", bus: true,
		body: body[contract.Takeover]("the engine whose claim to clear, and optionally which nodes"),
		ok:   []reply{ok[contract.TakeoverReply](200, "each node: whose it was, and whether its claim was cleared")},
		errs: []reply{unreadable, noConfig, conflict}},
	"POST /plan": {id: "plan", summary: "What a deployment of the posted config (or, with no body, the stored one) would do", bus: true,
		body: &bodyDoc{typ: typeOf[contract.Config](), optional: true, desc: "a config; none plans the stored one"},
		ok:   []reply{ok[contract.Plan](200, "every action per node, and the drift found there")},
		errs: []reply{unreadable, noConfig, conflict, nodesFail}},

	"GET /deployments": {id: "listDeployments", summary: "Every deployment the engine keeps", bus: true,
		ok: []reply{ok[[]contract.DeploymentSummary](200, "the deployments")}},
	"GET /deployments/{id}": {id: "getDeployment", summary: "A deployment and its steps", bus: true,
		desc: "Every step by default; with steps, summary, offset or limit, its summary and a page of its steps. " +
			"The steps keep their order, so pages of every step see each once; pages of some states do once the deployment ended.",
		query: stepsQuery,
		ok: []reply{ok[contract.Deployment](200, "the deployment, every step"),
			ok[contract.DeploymentPage](200, "asked with steps, summary, offset or limit: its summary and a page of its steps")},
		errs: []reply{noDeploy, fails(400, "steps, summary, offset or limit is not one the route takes: the error says which")}},
	"GET /deployments/{id}/events": {id: "followDeployment", summary: "A deployment's events, live, as server-sent events", bus: true,
		query: stepsQuery,
		desc: "First the deployment as it is (\"deployment\"), then every event from its start (\"started\", \"step\", \"log\", \"batch\", \"finished\"), " +
			"replayed so that a late follower misses nothing; a comment every 15 s keeps the connection. The stream ends after \"finished\".",
		ok: []reply{{code: 200, desc: "the stream", media: "text/event-stream", events: map[string]reflect.Type{
			"deployment": typeOf[contract.Deployment](), "started": typeOf[contract.DeploymentEvent](),
			"step": typeOf[contract.StepEvent](), "log": typeOf[contract.LogLine](), "batch": typeOf[contract.BatchEvent](),
			"finished": typeOf[contract.DeploymentEvent](),
		}}},
		errs: []reply{noDeploy, fails(500, "the server cannot stream")}},
	"GET /deployments/{id}/report": {id: "getReport", summary: "A deployment's timings", bus: true,
		ok: []reply{ok[contract.Report](200, "the report")}, errs: []reply{noDeploy}},
	"POST /deployments/{id}/cancel": {id: "cancelDeployment", summary: "End a running deployment", bus: true,
		ok:   []reply{ok[contract.Deployment](202, "the deployment as it ended")},
		errs: []reply{noDeploy, fails(409, "the deployment has already ended")}},

	"GET /status": {id: "status", summary: "Every component instance: usage and state", bus: true,
		ok: []reply{ok[[]contract.StatusEntry](200, "one entry per instance")}, errs: []reply{noConfig}},
	"GET /instances": {id: "instances", summary: "Every instance: its group and index, zone, IP, state, and each job's processes", bus: true,
		desc: "With a deployed manifest an instance is a machine of an instance group, holding every job the config puts on it; without one, a component on a node. " +
			"Its id is group/index. State is running when every job runs (or only configures), maintenance when its node is held out, else failing; " +
			"each job has its /status status and reason, and each monit process as its node's agent last read it (none from a node without a live agent).",
		ok: []reply{ok[[]contract.Instance](200, "one entry per instance, groups in name order")}, errs: []reply{noConfig}},
	"GET /hardware": {id: "hardware", summary: "The hardware of an instance's node, or of every node", bus: true, query: targetQuery,
		desc: `Names the instance in the query, or in a JSON body as the manual sends it: {"Comp": "web", "Ip": "10.0.0.1"}.`,
		body: &bodyDoc{typ: typeOf[contract.Target](), optional: true, desc: "the instance, instead of the query"},
		ok: []reply{{code: 200, desc: "one instance's node, or a list for several", schema: schemaObj{"oneOf": []any{
			typeOf[contract.InstanceHardware](),
			schemaObj{"type": "array", "items": typeOf[contract.InstanceHardware]()}}}}},
		errs: []reply{unreadable, noConfig, nodesFail}},
	"GET /prometheus/targets": {id: "prometheusTargets", summary: "Prometheus' HTTP service discovery of the node agents", bus: true,
		ok: []reply{ok[[]contract.SDTarget](200, "one group per node")}, errs: []reply{noConfig}},
	"PUT /restart": {id: "restart", summary: "Restart instances through monit; with max_in_flight, a rolling restart", bus: true,
		query: targetQuery, body: body[contract.Target]("the instances, instead of the query"),
		ok: []reply{ok[contract.ControlOutcome](200, "every instance restarted"),
			ok[contract.DeployStarted](202, "a rolling restart started: a deployment")},
		errs: []reply{unreadable, noConfig, fails(409, "a deployment runs, or the component is not deployed there yet"),
			{code: 502, desc: "an instance did not restart: the outcome of each", schema: schemaObj{"anyOf": []any{
				typeOf[contract.ControlOutcome](), typeOf[contract.ErrorBody]()}}}}},
	"PUT /stop": {id: "stop", summary: "Stop instances through monit", bus: true,
		query: targetQuery, body: body[contract.Target]("the instances, instead of the query"),
		ok:   []reply{ok[contract.ControlOutcome](200, "every instance stopped")},
		errs: []reply{unreadable, noConfig, ok[contract.ControlOutcome](502, "an instance did not stop: the outcome of each")}},
	"POST /exec": {id: "exec", summary: "Run a command on a component's nodes, or on nodes named: a deployment of kind exec", bus: true,
		desc: "One step a node, max_in_flight nodes at a time, each batch after the one before; each within timeout seconds (default 60, at most 3600), " +
			"killed on its node with all it started past it (exit code 124). A failed node halts the rest only with halt_on_failure; the deployment ends failed when any node failed. " +
			"Each step keeps its exit code, times and the last lines of its output, the config's secrets redacted. Followed and cancelled as any deployment.",
		body: &bodyDoc{desc: `{"component": "web"} or {"nodes": ["10.0.0.2"]}, not both; the command at most 4096 bytes, run as root by bash`, typ: typeOf[contract.FleetExecRequest]()},
		ok:   []reply{ok[contract.FleetExecStarted](202, "the exec started: follow its deployment at /deployments/{id}")},
		errs: []reply{unreadable, noConfig, conflict}},
	"POST /patch": {id: "patch", summary: "Upgrade the nodes' packages from the engine's mirror, batch by batch: a deployment of kind patch", bus: true,
		desc: "max_in_flight nodes at a time (default 1), each batch after the whole of the one before. On each node: its instances that a running balancer balances are drained; " +
			"its packages are upgraded from the engine's mirror (run `mirror sync` first), the mirror the only source, the node's changed configuration files kept and no service started by a package; " +
			"the node reboots when reboot says so (if-required, the default: when it has /var/run/reboot-required; always; never), or else its processes restart when anything was upgraded; " +
			"the engine waits until the node is back and every process monit watches runs, watches its instances healthy and puts them back. " +
			"A failed batch halts the rest. Nodes in maintenance are left out and named (held). Followed and cancelled as any deployment.",
		body: &bodyDoc{desc: `{"nodes": ["10.0.0.2"], "max_in_flight": 1, "reboot": "if-required"}, every field optional: every node of the config, one at a time`, typ: typeOf[patchRequest]()},
		ok:   []reply{ok[contract.PatchStarted](202, "the patch started: follow its deployment at /deployments/{id}")},
		errs: []reply{unreadable, noConfig, conflict, fails(http.StatusBadGateway, "a node to patch, or a balancer of its instances, cannot be reached")}},
	"POST /copy": {id: "copy", summary: "Put a file on a component's nodes, or on nodes named: a deployment of kind copy", bus: true,
		desc: "One step a node, max_in_flight nodes at a time, each batch after the one before; a failed node halts none of the others, and the deployment ends failed when any node failed. " +
			"Each node takes the file through the installer's transfer: its size and SHA-256 checked on the node, then moved into place with its mode. " +
			"Each step's output is the SHA-256 (hex) and the size of the file the node then has, \"<sha256> <size>\". Followed and cancelled as any deployment. " +
			"With \"from\" instead of \"to\" and the content, each node's step reads the file at that path back (at most 4 MiB; a missing or larger file fails the step naming why), " +
			"its output the SHA-256 and size the node computed, the file itself kept an hour at /deployments/{id}/files/{ip}.",
		body: &bodyDoc{desc: `{"component": "web"} or {"nodes": ["10.0.0.2"]}, not both; "to" (or "from") an absolute path with no "..", never under /var/lib/deployment-engine; the file at most 4 MiB, as base64; "mode" octal, default "0644"`,
			typ: typeOf[copyRequest](), limit: maxCopyBody},
		ok:   []reply{ok[contract.FleetCopyStarted](202, "the copy started: follow its deployment at /deployments/{id}")},
		errs: []reply{unreadable, noConfig, conflict}},
	"GET /deployments/{id}/files/{ip}": {id: "getCopiedFile", summary: "The file a copy from the nodes read back from one node", bus: true,
		desc: "The node's file as it had it, not redacted, its SHA-256 in the X-Content-SHA256 header; kept an hour after the read.",
		ok:   []reply{{code: 200, desc: "the file", media: "application/octet-stream"}},
		errs: []reply{fails(404, "no file read back from that node by that deployment, or past the hour it is kept"), fails(503, "the bus's store does not answer")}},
	"GET /heal": {id: "getHeal", summary: "Auto-heal: on or off, the meltdown guard, the instances it works on", bus: true,
		ok: []reply{ok[contract.HealState](200, "auto-heal's state")}},
	"PUT /heal": {id: "setHeal", summary: "Turn auto-heal on (lifting the meltdown guard) or off", bus: true,
		body: &bodyDoc{desc: `{"enabled": true} or {"enabled": false}`, typ: typeOf[healSwitch]()},
		ok:   []reply{ok[contract.HealSwitched](200, "the switch as it now is")}, errs: []reply{unreadable}},

	"GET /maintenance": {id: "listMaintenance", summary: "The nodes in maintenance", bus: true,
		ok: []reply{ok[[]contract.NodeMaintenance](200, "every node in maintenance, by IP")}},
	"GET /nodes/{ip}/maintenance": {id: "getNodeMaintenance", summary: "Whether a node is in maintenance", bus: true,
		ok: []reply{ok[contract.NodeMaintenance](200, `the node's maintenance; {"ip", "on": false} in service`)}, errs: []reply{noNode}},
	"PUT /nodes/{ip}/maintenance": {id: "setNodeMaintenance", summary: "Hold a node out of automatic work, or put it back", bus: true,
		desc: "A node in maintenance is left alone by auto-heal, has its steps held by deployments, and shows MAINTENANCE in /status. " +
			"Going in, a deployment of kind maintenance takes its instances out of their running balancers; coming out, another watches them healthy and puts them back: " +
			"the answer names it (deployment), or says why none could start (warning).",
		body: &bodyDoc{desc: `{"on": true, "reason": "why"} or {"on": false}; the reason at most 200 bytes, no control character`, typ: typeOf[maintenanceSwitch]()},
		ok:   []reply{ok[contract.NodeMaintenance](200, "the node's maintenance as it now is")}, errs: []reply{unreadable, noNode}},

	"GET /schedules": {id: "listSchedules", summary: "The schedules, each with its next run and its last", bus: true,
		ok: []reply{ok[[]contract.Schedule](200, "every schedule, by name")}},
	"POST /schedules": {id: "addSchedule", summary: "Run an action on a cron schedule", bus: true,
		desc: "The planner holding the schedules' lease runs each due run once, as the action's own route would: deploy (POST /deploy, " +
			"args its query's canaries, max_in_flight, auto_revert), restart (PUT /restart's body: with max_in_flight a rolling restart, " +
			"a deployment; without, a restart through monit), rollback (POST /rollback, no args), exec (POST /exec's body: a deployment of kind exec), " +
			"backup ({\"keep\": N}, default 7: the store written to <data dir>/backups/<cluster>/<schedule>-<time>.tar, the oldest beyond keep deleted). Each run is audited as schedule:<name>; " +
			"a deployment it starts names the schedule. With prohibit_overlap (the default) a run due while the previous run's deployment " +
			"still runs is skipped; missed says what becomes of runs due while no planner ran: skip (the default) or run_once.",
		body: body[scheduleBody]("the schedule; time_zone an IANA zone (default UTC), cron 5 fields or a descriptor (@daily, @every 1h)"),
		ok:   []reply{ok[contract.Schedule](201, "stored, with its next run")},
		errs: []reply{fails(400, "a field is at fault: the error and problems[].path name it (name, cron, time_zone, action, args, missed)"),
			fails(409, "a schedule has this name: delete it first")}},
	"GET /schedules/{name}": {id: "getSchedule", summary: "A schedule, with its next run and its last", bus: true,
		ok: []reply{ok[contract.Schedule](200, "the schedule")}, errs: []reply{noSchedule}},
	"DELETE /schedules/{name}": {id: "deleteSchedule", summary: "Delete a schedule: it runs no more", bus: true,
		desc: "A deployment a run started goes on.",
		ok:   []reply{ok[contract.Schedule](200, "the schedule as it was")}, errs: []reply{noSchedule}},

	"GET /download": {id: "listLogs", summary: "The names of the logs", bus: true,
		ok: []reply{ok[[]string](200, "the log names, for /logs/{name} and PUT /download")}},
	"PUT /download": {id: "downloadLog", summary: "A whole log (the manual's download by PUT)", bus: true,
		desc: `The body names the log: bare (local.log), quoted, as the manual wraps it ({ "local.log" }) or {"name": "local.log"}.`,
		body: &bodyDoc{media: "text/plain", desc: "the log's name"},
		ok:   []reply{{code: 200, desc: "the log as large as it was when the download began", media: "text/plain"}},
		errs: []reply{fails(400, "no log name, or not one a log has"), fails(404, "no log has this name")}},
	"GET /logs/{name}": {id: "getLog", summary: "A log, with Range support", bus: true,
		ok: []reply{{code: 200, desc: "the log", media: "text/plain"}, {code: 206, desc: "the range asked for", media: "text/plain"}},
		errs: []reply{fails(400, "not a log's name"), fails(404, "no log has this name"),
			{code: 416, desc: "the range is past the log's end", media: "text/plain"}}},
	"GET /logs.tar.gz": {id: "logBundle", summary: "Every log in one tar.gz, streamed", bus: true,
		ok:   []reply{{code: 200, desc: "the archive", media: "application/gzip"}},
		errs: []reply{fails(502, "the log service answered something unreadable")}},

	"GET /logs/follow": {id: "followLogs", summary: "A component's runtime log lines, live, as server-sent events", bus: true,
		desc: "Each \"line\" event is one line a node's agent read from one of the component's log files, as it arrives; with tail, " +
			"the last lines of each instance's file in the log store come first (tail true). Only the config's instances of the component " +
			"(on ip, when given) are followed, and the config's secrets are redacted. A comment every 15 s keeps the connection. " +
			"The stream ends when the client leaves or its token is revoked, or with a \"cut\" event when the client falls too far behind.",
		query: []param{
			{"component", "the component whose lines to follow (required)", str},
			{"ip", "only its instance on this node", str},
			{"tail", "the last this many lines of each instance first (default 0)", schemaObj{"type": "integer", "minimum": 0, "maximum": followTailMax}},
		},
		ok: []reply{{code: 200, desc: "the stream", media: "text/event-stream", events: map[string]reflect.Type{
			"line": typeOf[contract.FollowLine](), "cut": typeOf[contract.ErrorBody](),
		}}},
		errs: []reply{fails(400, "component, ip or tail is at fault: the error and problems[].path name it (a component the config lacks, a node it does not run on)"),
			noConfig, fails(500, "the server cannot stream")}},

	"GET /releases": {id: "listReleases", summary: "The stored BOSH releases",
		ok:   []reply{ok[[]contract.ReleaseSummary](200, "the releases")},
		errs: []reply{fails(500, "the store could not be read"), fails(503, "this engine keeps no releases")}},
	"POST /releases": {id: "uploadRelease", summary: "Store a BOSH release tarball",
		body: &bodyDoc{media: "application/octet-stream", desc: "the release tarball (.tgz)", streamed: true},
		ok: []reply{ok[contract.ReleaseSummary](201, "stored"),
			ok[contract.ReleaseSummary](200, "already stored with these contents")},
		errs: []reply{fails(400, "not a release: the error names the file at fault"), fails(409, "this version is stored with other contents"),
			fails(413, "larger than the engine takes: the error names the limit and the flag that raises it"),
			fails(500, "the release could not be stored"), fails(503, "this engine keeps no releases"),
			fails(507, "the disk lacks the room")}},

	"GET /audit": {id: "audit", summary: "The audit trail, oldest first",
		query: []param{
			{"since", "an RFC 3339 time, or a duration back from now (90m)", str},
			{"actor", "only this token's entries (engine: the engine's own)", str},
			{"action", "only this action (deploy, config, stop, ...)", str},
			{"limit", "the newest this many entries (default 1000)", schemaObj{"type": "integer", "minimum": 1, "maximum": maxAudit}},
		},
		ok: []reply{ok[[]contract.AuditEntry](200, "the entries")}, errs: []reply{fails(400, "a query parameter is malformed")}},

	"GET /clusters": {id: "listClusters", summary: "The engine's clusters the token reaches, the default one first",
		desc: "The default cluster is the one the manual's routes act on. Every route of this document is also served below " +
			"/deployment-engine/clusters/{cluster}/ (GET /deployment-engine/clusters/prod/status, say), acting on that cluster: " +
			"its own config, deployments, status, logs, heal state and audit. A machine belongs to one cluster.",
		ok:   []reply{ok[[]contract.Cluster](200, "the clusters, each with its stored config's catalog and nodes")},
		errs: []reply{fails(500, "the store could not be read")}},
	"POST /clusters": {id: "createCluster", summary: "Make a named cluster",
		desc: "The cluster has its own store, planner, installer, monitor, auto-heal, notifications and logs from the answer on; " +
			"post its config to /deployment-engine/clusters/{name}/config.",
		body: &bodyDoc{desc: `{"name": "prod"}: 1 to 63 lower-case letters, digits and hyphens`, typ: typeOf[contract.ClusterCreate]()},
		ok:   []reply{ok[contract.Cluster](201, "the cluster, made and started")},
		errs: []reply{unreadable, fails(409, "a cluster of that name exists"),
			fails(501, "this process of a split engine holds the default cluster only"), fails(500, "the cluster could not be made")}},
	"DELETE /clusters/{cluster}": {id: "deleteCluster", summary: "Take a named cluster off its nodes, then forget it",
		desc: "A deployment of kind delete removes each of the cluster's instances (drained and stopped as any removal) and the engine's " +
			"node agent from every node the cluster used; once it succeeded, the engine's state goes from those nodes, the cluster's config " +
			"with it (its nodes are free for another cluster), and the cluster is forgotten. Its record says deleting while that runs. " +
			"A delete that fails leaves the cluster as it is, to be deleted again.",
		ok: []reply{ok[contract.ClusterDeleted](202, "the delete's deployment, followed as any other at /clusters/{cluster}/deployments/{id}"),
			ok[contract.ClusterDeleted](200, "the cluster placed nothing: it is forgotten at once")},
		errs: []reply{fails(400, "the default cluster is not deleted"), fails(404, "no such cluster"),
			fails(409, "a deployment of the cluster runs"), fails(502, "a node of the cluster cannot be reached"),
			fails(503, "the cluster's planner does not answer")}},
	"GET /clusters/{cluster}": {id: "getCluster", summary: "One cluster",
		ok:   []reply{ok[contract.Cluster](200, "the cluster")},
		errs: []reply{fails(404, "no such cluster"), fails(500, "the store could not be read")}},

	"GET /certificates": {id: "listCertificates", summary: "Every certificate the engine made or serves, and when it expires",
		desc: "agents-ca (what node agents pin), agents-listener (what their NATS listener presents) and api (what https presents), " +
			"each with its subject, SANs, issuer, validity, seconds left now and whether the engine made it or was given it; never a key. " +
			"Each is as the process holding it last wrote it to the store: at its start and whenever it issues one.",
		ok:   []reply{ok[contract.Certificates](200, "the certificates, by name; none while no process has written them")},
		errs: []reply{fails(500, "the store could not be read")}},
	"POST /certificates/{cert}/rotate": {id: "rotateCertificate", summary: "Issue a certificate of the engine again, served without a restart", bus: true,
		desc: "api (under --tls auto) and agents-listener: the process holding it issues a new one from the same CA, for the same names, " +
			"valid until the CA's end, and presents it from its next TLS handshake; connections made before keep theirs. " +
			"The API's is kept in <data>/tls/api-cert.pem, so that a restart serves it. Clients and agents pin the CA, which does not change. " +
			"agents-ca: a new CA of the agents' own (kept in <data>/tls/agents-ca-key.pem, its certificate in agents-ca.pem), through a transition: " +
			"every agent is told to trust the old CA and the new, the listener's certificate is issued by the new one, then every agent is told " +
			"to trust the new one alone; no agent is disconnected and no instance restarted. The API's certificate and what its clients trust " +
			"do not change. agents_updated names the agents that took the new CA; agents_missed those that did not (not connected, or too old): " +
			"each gets it at the next deploy's agent step, and cannot reach the engine again before once its connection drops.",
		ok: []reply{ok[contract.CertificateRotated](202, "issued, and served from the next handshake")},
		errs: []reply{fails(404, "no such certificate"),
			fails(409, "the engine does not serve it (TLS off, an external NATS) or was given it (--tls-cert); for agents-ca, a rotation of it or a deployment is under way"),
			fails(503, "not connected to the bus")}},
}

// maintenanceSwitch is PUT /nodes/{ip}/maintenance's body.
type maintenanceSwitch struct {
	On     bool   `json:"on"`
	Reason string `json:"reason,omitempty"`
}

// healSwitch is PUT /heal's body.
type healSwitch struct {
	Enabled bool `json:"enabled"`
}
