package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/subject"
)

// AsyncAPIPath is where the API serves the AsyncAPI document of the
// engine's events, without a token, as it does the OpenAPI one.
const AsyncAPIPath = prefix + "/asyncapi.json"

// NATSPort is the port the document's server names by default: where the
// engine's NATS listens for agents and observers unless --nats-listen
// says otherwise (deploy/engine's DefaultAgentPort; a test there holds
// the two equal).
const NATSPort = 4222

// AsyncAPI is the AsyncAPI 3.0 document of the events a tool may follow
// on the engine's NATS (de.evt.>): a channel per family of subjects, its
// parameters, the message on it with its payload's JSON Schema (reflected
// from services/contract as the OpenAPI document's are) and examples, the
// server and the observer user's permissions; and, apart, the engine's
// protocol with its node agents on de.node.<ip>.> (asyncapi_node.go), with
// the agent user's permissions. build fills in its version.
func AsyncAPI(build BuildInfo) ([]byte, error) {
	sch := newSchemas()
	channels, operations, messages := schemaObj{}, schemaObj{}, schemaObj{}
	var errs []string
	for _, ev := range eventDocs() {
		ch, msg, err := ev.channel(sch)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		channels[ev.name] = ch
		messages[ev.name] = msg
		ref := "#/channels/" + ev.name
		operations["receive"+upperFirst(ev.name)] = schemaObj{
			"action": "receive", "title": ev.title, "summary": "Subscribe to " + ch["address"].(string),
			"channel":  schemaObj{"$ref": ref},
			"messages": []any{schemaObj{"$ref": ref + "/messages/" + ev.name}},
		}
	}
	errs = append(errs, addNodeChannels(sch, channels, operations, messages)...)
	sch.addExamples(eventExamples())
	errs = append(errs, sch.errs...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("asyncapi: %s", strings.Join(errs, "; "))
	}
	version := build.Version
	if version == "" {
		version = "dev"
	}
	perms := bus.ObserverPermissions()
	doc := schemaObj{
		"asyncapi": "3.0.0",
		"info": schemaObj{"title": "Deployment Engine events", "version": version,
			"description": "What the engine publishes on its NATS for other tools to follow: every deployment, step, batch and log " +
				"line, components going down and coming back, auto-heal's decisions, the audit trail and the engine's own operations. " +
				"Each is JSON with a version field v; a node's IP is written with dashes in a subject (10-0-0-5). `" +
				"nats sub '" + subject.AllEvents + "'` follows them all: the default cluster's. A named cluster's are the same " +
				"channels below its own prefix, de.cluster.<name>.evt.> for de.evt.> (`nats sub '" + subject.ClusterEvents("prod") +
				"'` follows cluster prod's, '" + subject.AllClusterEvents + "' every named cluster's). The engine's commands (de.cmd.>) and its work queue (de.step.>) " +
				"are not for other tools and are not described here. The channels whose names start with node are the engine's " +
				"protocol with its node agents on de.node.<ip>.>, described for the agents' sake: each operation is the agent's " +
				"(send what it publishes, receive what it subscribes to), as the agent user's security scheme permits; the " +
				"observer may not use them."},
		"defaultContentType": "application/json",
		"servers": schemaObj{"engine": schemaObj{
			"host": "{home}:{port}", "protocol": "nats",
			"title": "The engine's NATS",
			"description": "The engine's embedded NATS, where node agents and observers connect: TLS only, trusting the engine's " +
				"certificate (<data>/tls/cert.pem).",
			"variables": schemaObj{
				"home": schemaObj{"description": "the control machine's address as the nodes reach it: the config's properties.home, " +
					"or the host of serve --nats-listen", "examples": []any{"10.0.0.100"}},
				"port": schemaObj{"description": "the port of serve --nats-listen", "default": strconv.Itoa(NATSPort)},
			},
			"security": []any{schemaObj{"$ref": "#/components/securitySchemes/observer"},
				schemaObj{"$ref": "#/components/securitySchemes/agent"}},
		}},
		"channels":   channels,
		"operations": operations,
		"components": schemaObj{
			"schemas":  sch.components,
			"messages": messages,
			"securitySchemes": schemaObj{"observer": schemaObj{"type": "userPassword",
				"description": "User " + bus.ObserverUser + ", its password in <data>/nats-observer. It may subscribe to " +
					strings.Join(perms.Subscribe.Allow, ", ") + " and publish nothing (denied: " + strings.Join(perms.Publish.Deny, ", ") + ").",
				"x-nats-permissions": schemaObj{
					"publish":   schemaObj{"deny": perms.Publish.Deny},
					"subscribe": schemaObj{"allow": perms.Subscribe.Allow},
				}},
				"agent": agentScheme()},
		},
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	return out.Bytes(), nil
}

// serveAsyncAPI answers the events' document, without a token.
func (s *server) serveAsyncAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_, _ = w.Write(s.asyncapi)
}

// channel is ev's channel and message. Its address is the subject the
// engine's own builder (services/subject) makes of ev.params, each
// placeholder turned into a {parameter}; a parameter's location is the
// payload field that holds it, and its examples the tokens of ev's
// examples' subjects.
func (ev eventDoc) channel(sch *schemas) (ch, msg schemaObj, err error) {
	tokens := strings.Split(ev.at(ev.params), ".")
	fields, err := topFields(ev.params)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", ev.name, err)
	}
	params := schemaObj{}
	for i, tok := range tokens {
		name, ok := placeholders[tok]
		if !ok {
			if strings.HasPrefix(tok, "x0") || tok == "invalid" {
				return nil, nil, fmt.Errorf("%s: subject %s has a token %q of no parameter", ev.name, ev.at(ev.params), tok)
			}
			continue
		}
		desc, ok := paramDescs[name]
		if !ok {
			return nil, nil, fmt.Errorf("%s: parameter %s has no description in paramDescs", ev.name, name)
		}
		tokens[i] = "{" + name + "}"
		p := schemaObj{"description": desc}
		// The first field that holds the placeholder, for a stable document.
		for _, field := range slices.Sorted(maps.Keys(fields)) {
			if fields[field] == tok {
				p["location"] = "$message.payload#/" + field
				break
			}
		}
		var examples []any
		for _, x := range ev.examples {
			if t := strings.Split(ev.subjectOf(x), "."); len(t) == len(tokens) && !slices.Contains(examples, any(t[i])) {
				examples = append(examples, t[i])
			}
		}
		if len(examples) == 0 && name == "ip" {
			// A request with no body has no example message.
			examples = []any{"10-0-0-1"}
		}
		p["examples"] = examples
		params[name] = p
	}
	address := strings.Join(tokens, ".")
	ch = schemaObj{"address": address, "title": ev.title, "description": ev.desc,
		"messages": schemaObj{ev.name: schemaObj{"$ref": "#/components/messages/" + ev.name}}}
	if len(params) > 0 {
		ch["parameters"] = params
	}
	var examples []any
	for _, x := range ev.examples {
		v, err := asJSON(x)
		if err != nil {
			return nil, nil, fmt.Errorf("%s example: %w", ev.name, err)
		}
		examples = append(examples, schemaObj{"summary": ev.subjectOf(x), "payload": v})
	}
	msg = schemaObj{"name": ev.name, "title": ev.title, "contentType": "application/json"}
	if ev.typ != nil {
		msg["payload"] = sch.ref(ev.typ)
	}
	if len(examples) > 0 {
		msg["examples"] = examples
	}
	return ch, msg, nil
}

// topFields are a payload's top-level fields that hold strings.
func topFields(v any) (map[string]string, error) {
	j, err := asJSON(v)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	m, _ := j.(map[string]any)
	for k, x := range m {
		if s, ok := x.(string); ok {
			out[k] = s
		}
	}
	return out, nil
}

// asJSON is v as encoding/json writes it, read back as plain values.
func asJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

func upperFirst(s string) string { return strings.ToUpper(s[:1]) + s[1:] }
