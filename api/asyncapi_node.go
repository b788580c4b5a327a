package api

import (
	"reflect"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/bus"
	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/subject"
)

// agentProtocol opens the description of every channel of the engine's
// protocol with its node agents, so that no reader takes one for a
// public event.
const agentProtocol = "The engine's protocol with its node agents (de.node.<ip>.>, user node-<ip>), not a public event: " +
	"other tools follow de.evt.> instead. "

// nodeDoc is a channel of the engine's protocol with its agents: a
// subject of de.node.<ip>.> and what goes over it. Its operation is the
// agent's: send for what the agent publishes, receive for what it
// subscribes to.
type nodeDoc struct {
	eventDoc
	// verb is the subject's fourth token (subject.NodeVerbs).
	verb string
	// send: the agent publishes on it; otherwise the engine does and the
	// agent receives.
	send bool
	// sealed: the payload is nodeexec.Seal's "<hex HMAC-SHA256>\n<JSON>".
	sealed bool
	// reply is the agent's answer to a request on the channel.
	reply *replyDoc
}

// replyDoc is the message an agent answers a request with, on the
// requester's inbox.
type replyDoc struct {
	name, title, desc string
	typ               reflect.Type
	examples          []any
}

func replyOf[T any](name, title, desc string, examples ...T) *replyDoc {
	r := &replyDoc{name: name, title: title, desc: desc, typ: reflect.TypeFor[T]()}
	for _, x := range examples {
		r.examples = append(r.examples, x)
	}
	return r
}

// nodeDocs are the agents' channels: every verb of subject.NodeVerbs has
// one (a test holds it). Each address is made by the builder the agent
// and the engine use.
func nodeDocs() []nodeDoc {
	at := time.Date(2026, 11, 24, 22, 39, 5, 0, time.UTC)
	exit := 0
	// Where a payload lacks the subject's tokens, its examples are on
	// node 10.0.0.1 and run 9f86d081884c7d65.
	const exIP, exRun = "10.0.0.1", "9f86d081884c7d65"
	onNode := func(ev eventDoc, verb string) eventDoc {
		ev.exampleAt = func(any) string { return subject.Node(exIP, verb) }
		return ev
	}
	out := event("nodeExecOutput", "A command's output, a beat or its exit",
		agentProtocol+"Numbered from 1 in the order the agent publishes them (a gap is a lost message): a chunk of "+
			"stdout or stderr (data, base64), a beat every 3s while the command runs, and last its exit status or the error "+
			"that means none will come.",
		func(nodeexec.Out) string { return subject.ExecOutput(pIP, pRun) },
		nodeexec.Out{},
		nodeexec.Out{Seq: 1, Stream: "stdout", Data: []byte("active\n")},
		nodeexec.Out{Seq: 2, Exit: &exit})
	out.exampleAt = func(any) string { return subject.ExecOutput(exIP, exRun) }
	hello := eventDoc{name: "nodeHello", title: "The engine asks an agent what it is",
		desc: agentProtocol + "A request with an empty body; the agent answers with its version and the largest stdin it takes " +
			"(0: it runs no commands, and the installer uses SSH).",
		at: func(any) string { return subject.Node(pIP, subject.VerbHello) }}
	hello = onNode(hello, subject.VerbHello)
	return []nodeDoc{
		{verb: subject.VerbHeartbeat, send: true, eventDoc: event("nodeHeartbeat", "An agent's heartbeat",
			agentProtocol+"Every interval_s seconds: the node's load and each of its components' state as monit and the "+
				"process table see it. The monitor reads it; a node silent for three intervals is down.",
			func(h contract.Heartbeat) string { return subject.Node(h.IP, subject.VerbHeartbeat) },
			contract.Heartbeat{IP: pIP},
			contract.Heartbeat{V: 1, IP: "10.0.0.1", Hostname: "n1", Time: at, IntervalS: 5, Version: "v1.4.0",
				Hardware: contract.NodeHardware{IP: "10.0.0.1", CPU: 2, RAM: 4049952, DISK: 54988.8},
				CPUPct:   1.2, MemPct: 40.1, DiskPct: 8,
				Components: []contract.ComponentState{{Name: "web", Process: "web", Monit: "running", Running: true}}})},
		{verb: subject.VerbLog, send: true, eventDoc: event("nodeLog", "A line of a component's runtime log",
			agentProtocol+"One line the agent read from one of the component's log files (stream names the file); "+
				"seq orders one file's lines. `logs --follow` and GET /deployment-engine/logs/follow relay them.",
			func(l contract.LogLine) string { return subject.NodeLog(l.Node, l.Component) },
			contract.LogLine{Node: pIP, Component: pComponent},
			contract.LogLine{V: 1, Node: "10.0.0.1", Component: "web", Stream: "/var/log/web/web.log", Seq: 7, Time: at,
				Line: "GET /healthz 200"})},
		{verb: subject.VerbControl, eventDoc: onNode(event("nodeControl", "The engine asks an agent to restart or stop a process",
			agentProtocol+"A request: the agent runs `monit <action> <process>` for one of its node's components, "+
				"waits at most timeout_s seconds (0: the action's default) and answers with the outcome.",
			func(contract.Control) string { return subject.Node(pIP, subject.VerbControl) },
			contract.Control{},
			contract.Control{V: 1, Action: "restart", Process: "web", TimeoutS: 90}), subject.VerbControl),
			reply: replyOf("nodeControlReply", "An agent's answer to a control request",
				"The outcome of a control request; error set when the agent refused it or monit failed.",
				contract.ControlReply{V: 1, OK: true, Output: "web restarted"})},
		{verb: subject.VerbHello, eventDoc: hello,
			reply: replyOf("nodeHelloReply", "An agent's answer to hello",
				"The agent's version, and the largest stdin of a command it runs for the installer (0: none).",
				nodeexec.Hello{V: 1, Version: "v1.4.0", MaxStdin: nodeexec.MaxStdin})},
		{verb: subject.VerbExec, sealed: true, eventDoc: event("nodeExec", "The installer asks an agent to run a command",
			agentProtocol+"A request sealed with the node's key: the JSON body follows a line of its hex HMAC-SHA256 "+
				"(\"<64 hex digits>\\n<body>\"); the agent refuses one for another node, older than 60s, or seen before. "+
				"Subscribed to exec-out.{run} first, the installer hears the command's output there. Instead of cmd, "+
				"read names a read-only script the agent answers itself (markers, probe), and chain a node's chain of "+
				"steps the agent runs itself, with the control lines, markers, locks and files the chain script keeps.",
			func(r nodeexec.Request) string { return subject.Node(r.Node, subject.VerbExec) },
			nodeexec.Request{Node: pIP},
			nodeexec.Request{V: 1, Node: "10.0.0.1", Run: exRun, Cmd: "systemctl is-active monit",
				TimeoutMS: 60000, Time: at.UnixMilli(), Nonce: "c2a1e0f4b7d94b1e"}),
			reply: replyOf("nodeExecReply", "An agent's answer to an exec request",
				"Started (no error), or refused and nothing ran (error says why).",
				nodeexec.Reply{V: 1, Version: "v1.4.0"})},
		{verb: subject.VerbTrust, sealed: true, eventDoc: event("nodeTrust", "The engine gives an agent the CA certificates to trust",
			agentProtocol+"A request sealed with the node's trust key (as nodeExec, under a key of its own): while the agents' CA rotates, "+
				"the old CA and the new, then the new alone. The agent keeps them in its config file and verifies the engine's NATS with "+
				"them from its next TLS handshake, keeping the connection it has; it refuses one for another node, older than 60s, seen "+
				"before, or with anything but CA certificates.",
			func(t nodeexec.Trust) string { return subject.Node(t.Node, subject.VerbTrust) },
			nodeexec.Trust{Node: pIP},
			nodeexec.Trust{V: 1, Node: "10.0.0.1", CA: "-----BEGIN CERTIFICATE-----\nMIIB…\n-----END CERTIFICATE-----\n",
				Time: at.UnixMilli(), Nonce: "5d0f8a3c1e7b4a92"}),
			reply: replyOf("nodeTrustReply", "An agent's answer to a trust request",
				"Taken (no error), or refused and the agent trusts what it did before (error says why).",
				nodeexec.TrustReply{V: 1, Version: "v1.4.0"})},
		{verb: subject.VerbExecOut, send: true, eventDoc: out},
		{verb: subject.VerbExecClose, eventDoc: onNode(event("nodeExecClose", "The installer closes a command's pipes",
			agentProtocol+"As a dropped SSH session does: the command's stdin and outputs close; the command is not killed.",
			func(nodeexec.Close) string { return subject.Node(pIP, subject.VerbExecClose) },
			nodeexec.Close{},
			nodeexec.Close{Run: exRun}), subject.VerbExecClose)},
	}
}

// addNodeChannels adds the agents' channels, messages and operations, and
// the channels of their replies, to the document's.
func addNodeChannels(sch *schemas, channels, operations, messages schemaObj) []string {
	var errs []string
	security := []any{schemaObj{"$ref": "#/components/securitySchemes/agent"}}
	for _, nd := range nodeDocs() {
		ch, msg, err := nd.channel(sch)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if nd.sealed {
			msg["contentType"] = "text/plain"
			msg["x-sealed"] = sealedHMAC
		}
		channels[nd.name] = ch
		messages[nd.name] = msg
		ref := "#/channels/" + nd.name
		action, verb := "receive", "Subscribe to "
		if nd.send {
			action, verb = "send", "Publish on "
		}
		op := schemaObj{"action": action, "title": nd.title, "summary": verb + ch["address"].(string) + " (the agent)",
			"channel":  schemaObj{"$ref": ref},
			"messages": []any{schemaObj{"$ref": ref + "/messages/" + nd.name}},
			"security": security,
		}
		if r := nd.reply; r != nil {
			rref := "#/channels/" + r.name
			channels[r.name] = schemaObj{"address": nil, "title": r.title,
				"description": agentProtocol + "The requester's inbox: the NATS reply subject of the request on " + ch["address"].(string) + ".",
				"messages":    schemaObj{r.name: schemaObj{"$ref": "#/components/messages/" + r.name}}}
			var req any
			if len(nd.examples) > 0 {
				req = nd.examples[0]
			}
			var examples []any
			for _, x := range r.examples {
				v, err := asJSON(x)
				if err != nil {
					errs = append(errs, r.name+" example: "+err.Error())
					continue
				}
				examples = append(examples, schemaObj{"summary": "the answer to a request on " + nd.subjectOf(req), "payload": v})
			}
			messages[r.name] = schemaObj{"name": r.name, "title": r.title, "description": r.desc,
				"contentType": "application/json", "payload": sch.ref(r.typ), "examples": examples}
			op["reply"] = schemaObj{"channel": schemaObj{"$ref": rref},
				"messages": []any{schemaObj{"$ref": rref + "/messages/" + r.name}}}
		}
		operations[action+upperFirst(nd.name)] = op
	}
	return errs
}

// sealedHMAC is the x-sealed of a message whose JSON body follows a line
// of its hex HMAC-SHA256 (nodeexec.Seal): the payload schema is the body's.
// asyncapitest.SealedHMAC is the same (a test holds them equal).
const sealedHMAC = "hmac-sha256-hex-line"

// agentScheme is the security scheme of the node agents' users, with
// their permissions as the bus grants them.
func agentScheme() schemaObj {
	perms := bus.AgentPermissions(pIP)
	param := func(subjects []string) []string {
		out := make([]string, len(subjects))
		for i, s := range subjects {
			out[i] = strings.ReplaceAll(s, "192-0-2-254", "{ip}")
		}
		return out
	}
	pub, sub := param(perms.Publish.Allow), param(perms.Subscribe.Allow)
	return schemaObj{"type": "userPassword",
		"description": "User " + bus.AgentUserPrefix + "{ip}, one per node (node-10-0-0-5), its password derived from the engine's " +
			"secret for that node alone and installed with the agent. It may publish on " + strings.Join(pub, ", ") +
			" and subscribe to " + strings.Join(sub, ", ") + " only, and answer each request it receives once, within " +
			perms.Response.Expires.String() + ".",
		"x-nats-permissions": schemaObj{
			"publish":   schemaObj{"allow": pub},
			"subscribe": schemaObj{"allow": sub},
			"response":  schemaObj{"max_msgs": perms.Response.MaxMsgs, "expires": perms.Response.Expires.String()},
		}}
}
