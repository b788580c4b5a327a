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
