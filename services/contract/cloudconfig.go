package contract

import "time"

// CloudConfig is where a manifest's instances may go, as BOSH's director
// takes a cloud config: the machines, in availability zones, and how the
// engine reaches them. PUT /deployment-engine/cloud-config takes it as
// YAML or JSON; GET answers it as JSON.
//
//	home: 10.0.0.1
//	ssh: {user: root, key: /etc/de/keys/root}
//	azs:
//	- name: z1
//	  machines: [10.0.0.5, 10.0.0.6]
//	- name: z2
//	  machines: [{ip: 10.0.0.7, user: admin, key: /etc/de/keys/z2}]
//	disks: {10.0.0.5: /dev/vdb}
type CloudConfig struct {
	// Home is the engine's address as the machines see it.
	Home string `json:"home"`
	// SSH is how the engine logs in to a machine that says nothing else.
	SSH CloudSSH `json:"ssh"`
	// AZs are the zones, each with its machines; a machine is in one.
	AZs []CloudAZ `json:"azs"`
	// Disks names a machine's device for its persistent disk.
	Disks map[string]string `json:"disks,omitempty"`
}

// CloudSSH is a login: a user and the path of its private key on the
// engine's machine (never the key itself: the cloud config holds no
// secret).
type CloudSSH struct {
	User string `json:"user,omitempty"`
	Key  string `json:"key,omitempty"`
}

// CloudAZ is an availability zone and its machines.
type CloudAZ struct {
	Name     string         `json:"name"`
	Machines []CloudMachine `json:"machines"`
}

// CloudMachine is a machine: its IP, and a login of its own when it
// differs from the cloud config's (empty fields take the cloud config's).
type CloudMachine struct {
	IP   string `json:"ip"`
	User string `json:"user,omitempty"`
	Key  string `json:"key,omitempty"`
}

// CloudConfigPut stores a cloud config (de.cmd.cloudconfig.put): Body is
// the YAML or JSON as it came, the planner reads and checks it.
type CloudConfigPut struct {
	V    int    `json:"v"`
	Body []byte `json:"body"`
}

// ManifestDeploy deploys a BOSH deployment manifest
// (POST /deployment-engine/manifest, de.cmd.manifest.deploy): the
// manifest's YAML, its ops files' YAML applied in order, and the values
// of variables (-v and -l), which win over the ones the engine generated.
//
//	{"manifest": "name: simple\ninstance_groups: ...", "ops": ["- type: replace\n  path: /x?\n  value: 1\n"],
//	 "vars": {"admin_password": "given"}}
type ManifestDeploy struct {
	Manifest string         `json:"manifest"`
	Ops      []string       `json:"ops,omitempty"`
	Vars     map[string]any `json:"vars,omitempty"`
}

// ManifestDeployed answers a manifest deploy: the deployment started, the
// manifest's name, where each instance group's instances went (its
// machines, by index), and what the engine does not do of the manifest.
//
//	{"id": "d-20261124-223905-1a2b", "name": "simple",
//	 "placement": {"web": ["10.0.0.5", "10.0.0.7"]}, "warnings": []}
type ManifestDeployed struct {
	ID        string              `json:"id"`
	Name      string              `json:"name"`
	Placement map[string][]string `json:"placement"`
	Warnings  []string            `json:"warnings"`
}

// ManifestDeployCmd is a manifest deploy on the bus: Check checks the
// config's nodes first, as POST /config does unless ?check=0.
type ManifestDeployCmd struct {
	V      int            `json:"v"`
	Check  bool           `json:"check"`
	Deploy ManifestDeploy `json:"deploy"`
}

// ManifestVariables lists the variables the engine generated for the
// deployed manifest (GET /deployment-engine/manifest/variables): never a
// value.
//
//	{"manifest": "simple", "variables": [{"name": "db_ca", "type": "certificate",
//	  "generated": "2026-12-06T05:10:00Z", "regenerate": false}]}
type ManifestVariables struct {
	Manifest  string             `json:"manifest"`
	Variables []ManifestVariable `json:"variables"`
}

// ManifestVariable is one generated variable: its type, the CA that
// signed it (a certificate), when it was generated, and whether the next
// manifest deploy generates it anew.
type ManifestVariable struct {
	Name       string     `json:"name"`
	Type       string     `json:"type,omitempty"`
	CA         string     `json:"ca,omitempty"`
	Generated  *time.Time `json:"generated,omitempty"`
	Regenerate bool       `json:"regenerate"`
}

// ManifestRegenerate marks a generated variable to be generated anew at
// the next manifest deploy (POST /manifest/variables/{name}/regenerate,
// de.cmd.manifest.regenerate).
type ManifestRegenerate struct {
	V    int    `json:"v"`
	Name string `json:"name"`
}

// ManifestRegenerated answers it: the variable marked, and the
// certificates it signs, which are generated anew with it.
//
//	{"manifest": "simple", "name": "db_ca", "with": ["db_tls"], "at": "the next manifest deploy"}
type ManifestRegenerated struct {
	Manifest string   `json:"manifest"`
	Name     string   `json:"name"`
	With     []string `json:"with"`
	At       string   `json:"at"`
}
