package contract

// ReleaseSummary is a stored BOSH release as GET and POST
// /deployment-engine/releases answer it: its name, version, and the names
// of its jobs and packages.
//
//	{"name": "nats", "version": "56", "jobs": ["nats"], "packages": ["gnatsd"]}
type ReleaseSummary struct {
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Jobs     []string `json:"jobs"`
	Packages []string `json:"packages"`
}

// CompiledKept answers a node's PUT of a compiled package: Kept is its key
// (<fingerprint>/<os>), State "kept" (201) or "kept already" (200: the
// first upload of a key stays).
//
//	{"kept": "19a349aaae90c479c0c5f17798a06b4a/debian-12-x86_64", "state": "kept"}
type CompiledKept struct {
	Kept  string `json:"kept"`
	State string `json:"state"`
}
