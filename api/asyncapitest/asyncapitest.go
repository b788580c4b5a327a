// Package asyncapitest holds the events the engine publishes to the
// AsyncAPI document of its events (GET /deployment-engine/asyncapi.json):
// each event a test sees must be on a subject one of the document's
// channels matches, its parameters as the channel states them (each one
// token, within its enum, equal to the payload field its location names),
// and its payload valid against the channel's message schema. An event on
// a subject no channel matches is drift too. The agents' channels are read
// alike: a message the document gives no payload must come with an empty
// body, and a sealed one (x-sealed) is read past its signature line; an
// agent's reply, on a channel of no address, matches no subject.
//
// Payload schemas are compiled as JSON Schema 2020-12 (santhosh-tekuri's
// jsonschema, which validates each against the draft's metaschema as it
// compiles it); the document's own structure is checked by the api's
// tests against the AsyncAPI 3.0 JSON Schema.
package asyncapitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Checker checks events against one document.
type Checker struct {
	channels []channel
}

type channel struct {
	name   string
	tokens []string // a literal, or {param}
	params map[string]param
	// schema is nil for a message with no body.
	schema *jsonschema.Schema
	// sealed: the JSON body follows a line of its signature.
	sealed bool
}

type param struct {
	enum []string
	// field is the payload's top-level field that holds the parameter's
	// token ("" when none does).
	field string
}

// document is the part of an AsyncAPI document the checker reads.
type document struct {
	AsyncAPI string `json:"asyncapi"`
	Channels map[string]struct {
		Address    string `json:"address"`
		Parameters map[string]struct {
			Enum     []string `json:"enum"`
			Location string   `json:"location"`
		} `json:"parameters"`
		Messages map[string]struct {
			Ref string `json:"$ref"`
		} `json:"messages"`
	} `json:"channels"`
	Components struct {
		Messages map[string]struct {
			Payload json.RawMessage `json:"payload"`
			Sealed  string          `json:"x-sealed"`
		} `json:"messages"`
	} `json:"components"`
}

// SealedHMAC is the x-sealed of a message whose JSON body follows a line
// of its hex HMAC-SHA256: the checker reads the body past that line.
const SealedHMAC = "hmac-sha256-hex-line"

const docURL = "https://engine.invalid/asyncapi.json"

// Load reads a document and compiles each channel's message schema.
func Load(doc []byte) (*Checker, error) {
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("asyncapitest: read the document: %w", err)
	}
	if !strings.HasPrefix(d.AsyncAPI, "3.") {
		return nil, fmt.Errorf("asyncapitest: asyncapi %q, want 3.x", d.AsyncAPI)
	}
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("asyncapitest: read the document: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(docURL, raw); err != nil {
		return nil, fmt.Errorf("asyncapitest: %w", err)
	}
	names := make([]string, 0, len(d.Channels))
	for name := range d.Channels {
		names = append(names, name)
	}
	sort.Strings(names)
	ck := &Checker{}
	for _, name := range names {
		ch := d.Channels[name]
		if len(ch.Messages) != 1 {
			return nil, fmt.Errorf("asyncapitest: channel %s has %d messages; the checker reads one per channel", name, len(ch.Messages))
		}
		var ref string
		for _, m := range ch.Messages {
			ref = m.Ref
		}
		msg, ok := strings.CutPrefix(ref, "#/components/messages/")
		if !ok {
			return nil, fmt.Errorf("asyncapitest: channel %s: message %q is not a reference to a component", name, ref)
		}
		m := d.Components.Messages[msg]
		var sch *jsonschema.Schema
		if len(m.Payload) > 0 {
			if sch, err = c.Compile(docURL + "#/components/messages/" + msg + "/payload"); err != nil {
				return nil, fmt.Errorf("asyncapitest: channel %s: its payload schema: %w", name, err)
			}
		}
		if m.Sealed != "" && m.Sealed != SealedHMAC {
			return nil, fmt.Errorf("asyncapitest: channel %s: x-sealed %q, the checker reads %q", name, m.Sealed, SealedHMAC)
		}
		if ch.Address == "" {
			continue // a reply's channel: the requester's inbox, no subject to match
		}
		cc := channel{name: name, tokens: strings.Split(ch.Address, "."), params: map[string]param{}, schema: sch, sealed: m.Sealed != ""}
		for pname, p := range ch.Parameters {
			field := ""
			if p.Location != "" {
				f, ok := strings.CutPrefix(p.Location, "$message.payload#/")
				if !ok || strings.Contains(f, "/") {
					return nil, fmt.Errorf("asyncapitest: channel %s, parameter %s: location %q is not a top-level payload field", name, pname, p.Location)
				}
				field = f
			}
			cc.params[pname] = param{enum: p.Enum, field: field}
		}
		for _, t := range cc.tokens {
			if p, ok := paramName(t); ok {
				if _, ok := cc.params[p]; !ok {
					return nil, fmt.Errorf("asyncapitest: channel %s: address %s has {%s}, its parameters lack it", name, ch.Address, p)
				}
			}
		}
		ck.channels = append(ck.channels, cc)
	}
	return ck, nil
}

func paramName(tok string) (string, bool) {
	if len(tok) > 2 && tok[0] == '{' && tok[len(tok)-1] == '}' {
		return tok[1 : len(tok)-1], true
	}
	return "", false
}

// Channels are the names of the document's channels.
func (c *Checker) Channels() []string {
	out := make([]string, len(c.channels))
	for i, ch := range c.channels {
		out[i] = ch.name
	}
	return out
}

// Check holds one event to the document. It answers the channel the
// subject is on, and nil when the event follows the document.
func (c *Checker) Check(subject string, data []byte) (string, error) {
	toks := strings.Split(subject, ".")
	var matched []*channel
	for i := range c.channels {
		if c.channels[i].matches(toks) {
			matched = append(matched, &c.channels[i])
		}
	}
	switch len(matched) {
	case 0:
		return "", fmt.Errorf("event on %s: no channel of the document has this subject", subject)
	case 1:
	default:
		names := make([]string, len(matched))
		for i, m := range matched {
			names[i] = m.name
		}
		return "", fmt.Errorf("event on %s: channels %s all match it", subject, strings.Join(names, ", "))
	}
	ch := matched[0]
	if ch.schema == nil {
		if len(data) > 0 {
			return ch.name, fmt.Errorf("event on %s (channel %s): a body of %d bytes where the document has none", subject, ch.name, len(data))
		}
		return ch.name, nil
	}
	if ch.sealed {
		sig, body, ok := bytes.Cut(data, []byte("\n"))
		if !ok || len(sig) != 64 {
			return ch.name, fmt.Errorf("event on %s (channel %s): not sealed (a line of 64 hex digits, then the body)", subject, ch.name)
		}
		data = body
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return ch.name, fmt.Errorf("event on %s (channel %s): the payload is not JSON: %w", subject, ch.name, err)
	}
	var errs []error
	if err := ch.schema.Validate(v); err != nil {
		errs = append(errs, fmt.Errorf("event on %s (channel %s): the payload does not match its schema: %w", subject, ch.name, err))
	}
	obj, _ := v.(map[string]any)
	for i, t := range ch.tokens {
		name, ok := paramName(t)
		if !ok {
			continue
		}
		p := ch.params[name]
		if len(p.enum) > 0 && !slices.Contains(p.enum, toks[i]) {
			errs = append(errs, fmt.Errorf("event on %s (channel %s): {%s} is %q, not one of %v", subject, ch.name, name, toks[i], p.enum))
		}
		if p.field != "" && obj[p.field] != toks[i] {
			errs = append(errs, fmt.Errorf("event on %s (channel %s): {%s} is %q, the payload's %s %v", subject, ch.name, name, toks[i], p.field, obj[p.field]))
		}
	}
	return ch.name, errors.Join(errs...)
}

// matches tells whether a subject's tokens are on the channel: the same
// count, each literal equal and each parameter one token that is no
// wildcard.
func (ch *channel) matches(toks []string) bool {
	if len(toks) != len(ch.tokens) {
		return false
	}
	for i, t := range ch.tokens {
		if _, ok := paramName(t); ok {
			if toks[i] == "" || toks[i] == "*" || toks[i] == ">" {
				return false
			}
			continue
		}
		if t != toks[i] {
			return false
		}
	}
	return true
}
