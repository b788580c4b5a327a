package contract

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
