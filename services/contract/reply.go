package contract

// Problem is one thing wrong with a request, named precisely enough for a
// client to show it next to the field it concerns.
//
//	{"path": "components.nats[1]", "component": "nats", "ip": "10.0.0.300", "reason": "not an IPv4 address"}
type Problem struct {
	Path      string `json:"path,omitempty"`
	Component string `json:"component,omitempty"`
	IP        string `json:"ip,omitempty"`
	Reason    string `json:"reason"`
}

// ErrorBody is the JSON body of every error the engine answers. ID is the
// request's correlation id: the API's answer carries it, as does the
// engine's log line about the error.
//
//	{"error": "config rejected: 2 problems", "id": "9f2c4e1a7b3d5c60", "problems": [...]}
type ErrorBody struct {
	Error    string    `json:"error"`
	ID       string    `json:"id,omitempty"`
	Problems []Problem `json:"problems,omitempty"`
}
