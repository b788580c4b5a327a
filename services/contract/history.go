package contract

import "time"

// HistoryEntry is one config the engine applied, as the config history
// (de.cmd.config.history, GET /deployment-engine/config/history) lists it:
// its deployment, how that ended, and the config with secrets redacted.
type HistoryEntry struct {
	Deployment string     `json:"deployment"`
	Kind       string     `json:"kind,omitempty"`
	State      string     `json:"state"`
	Created    time.Time  `json:"created"`
	Finished   *time.Time `json:"finished,omitempty"`
	Config     Config     `json:"config"`
}
