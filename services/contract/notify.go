package contract

// NotifyConfig is where the engine sends notifications: the config's
// "notify" property or <data>/notify.json.
//
//	{"webhooks": [{"name": "ops", "url": "http://127.0.0.1:9000/hook", "secret": "s3cret",
//	               "events": ["deployment.failed", "heal.*"]},
//	              {"url": "https://hooks.slack.example/T0/B0/x", "format": "slack"}],
//	 "down_after_s": 60}
type NotifyConfig struct {
	Webhooks []Webhook `json:"webhooks"`
	// DownAfterS is how long a component must stay DOWN before
	// component.down is sent (default 60).
	DownAfterS int `json:"down_after_s,omitempty"`
}

// Webhook is one receiver. Events filters by name (a trailing * matches a
// prefix); empty means every event. Format is "json" (the default) or
// "slack" ({"text": ...}). Secret signs each body: the header
// X-DE-Signature carries "sha256=" and the hex HMAC-SHA256 of the body.
// A slack-format URL is a secret too: it is redacted like Secret.
type Webhook struct {
	Name   string   `json:"name,omitempty"`
	URL    string   `json:"url"`
	Secret string   `json:"secret,omitempty"`
	Format string   `json:"format,omitempty"`
	Events []string `json:"events,omitempty"`
}

// Notification is the JSON body a webhook receives.
//
//	{"v": 1, "event": "deployment.failed", "time": "...", "summary": "deployment d-1 failed: 1 step(s) failed",
//	 "subject": "de.evt.deploy.d-1.finished", "data": {...the event...}}
type Notification struct {
	V       int    `json:"v"`
	Event   string `json:"event"`
	Time    string `json:"time"`
	Summary string `json:"summary"`
	Subject string `json:"subject"`
	Data    any    `json:"data"`
}
