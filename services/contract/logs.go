package contract

import "time"

// LogReadMax is the most one log read returns.
const LogReadMax = 512 << 10

// LogRead asks the log service for part of a log (de.cmd.logs.read).
// Length is capped at LogReadMax; 0 means LogReadMax.
//
//	{"name": "web_0.log", "offset": 0, "length": 524288}
type LogRead struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// LogChunk is a part of a log: Data (base64 in JSON) starts at Offset;
// Size is the whole file's size when it was read. An empty Data with
// Offset >= Size is the end.
//
//	{"name": "web_0.log", "size": 1234, "offset": 0, "data": "MjAyNi0xMS0yNVQ..."}
type LogChunk struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"`
}

// FollowLine is one line of a component's runtime log as GET
// /deployment-engine/logs/follow streams it (a "line" event): the node and
// the component its agent's subject names, the engine's file of that
// instance (as GET /logs/{name} serves it), the node's file the agent read
// it from, when, and the line, the config's secrets redacted. Tail marks a
// line read back from the engine's file before the live ones.
//
//	{"node": "10.0.0.5", "component": "web", "instance": "web_0.log", "file": "/var/log/web.log", "time": "2026-11-25T12:00:00Z", "line": "GET / 200"}
type FollowLine struct {
	Node      string    `json:"node"`
	Component string    `json:"component"`
	Instance  string    `json:"instance"`
	File      string    `json:"file"`
	Time      time.Time `json:"time"`
	Line      string    `json:"line"`
	Tail      bool      `json:"tail,omitempty"`
}
