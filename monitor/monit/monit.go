// Package monit is the engine's dialogue with monit on a node: the
// scripts it has a node run (control.go: a restart or stop that waits for
// its outcome, a probe of the processes monit knows), the forms of monit's
// answers (the XML of its HTTP interface, `monit summary` as monit 5.2 and
// 5.33 print it in batch and table forms, a monit that cannot answer).
package monit

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Service is one monit service.
type Service struct {
	Name string
	// Type is monit's type name: Process, File, System, ...
	Type string
	// Status is monit's own word for the state ("OK", "running",
	// "Not monitored", "Does not exist").
	Status string
	// Running says the service is monitored and healthy.
	Running bool
}

// DaemonError is a monit that did not answer: the manual's "monit: cannot
// read status from the monit daemon".
type DaemonError struct{ Msg string }

func (e *DaemonError) Error() string { return "monit: " + e.Msg }

// Hint tells an operator what to do about it.
func (e *DaemonError) Hint() string {
	return "monit on the node is not answering; it is usually starved of CPU: check the node's load, then restart monit (monit quit; monit) or reboot the node"
}

// maxInput bounds what the parsers read: monit's output for hundreds of
// services is a few tens of KiB.
const maxInput = 4 << 20

// XML status: types and monitor states from monit's sources.
const (
	xmlTypeProcess = 3
	monitorNot     = 0
	monitorYes     = 1
	eventNonexist  = 0x200
)

var xmlTypes = map[int]string{0: "Filesystem", 1: "Directory", 2: "File", 3: "Process", 4: "Host", 5: "System", 6: "Fifo", 7: "Program", 8: "Net"}

type xmlStatus struct {
	XMLName  xml.Name `xml:"monit"`
	Services []struct {
		Type    int    `xml:"type,attr"`
		Name    string `xml:"name"`
		Status  int    `xml:"status"`
		Monitor int    `xml:"monitor"`
		PID     int    `xml:"pid"`
	} `xml:"service"`
}

// ParseXML reads monit's /_status?format=xml.
func ParseXML(r io.Reader) ([]Service, error) {
	d := xml.NewDecoder(io.LimitReader(r, maxInput))
	d.CharsetReader = func(charset string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(charset) {
		case "iso-8859-1", "latin1", "us-ascii":
			return latin1{in}, nil
		}
		return nil, fmt.Errorf("monit xml: unsupported charset %q", charset)
	}
	var st xmlStatus
	if err := d.Decode(&st); err != nil {
		return nil, fmt.Errorf("monit xml: %w", err)
	}
	out := make([]Service, 0, len(st.Services))
	for _, s := range st.Services {
		if s.Name == "" {
			return nil, errors.New("monit xml: a service without a name")
		}
		typ := xmlTypes[s.Type]
		if typ == "" {
			typ = fmt.Sprintf("type %d", s.Type)
		}
		sv := Service{Name: s.Name, Type: typ}
		switch {
		case s.Monitor == monitorNot:
			sv.Status = "Not monitored"
		case s.Monitor != monitorYes:
			sv.Status = "Initializing"
		case s.Status&eventNonexist != 0:
			sv.Status = "Does not exist"
		case s.Status != 0:
			sv.Status = "Failed"
		default:
			sv.Status = "OK"
			sv.Running = s.Type != xmlTypeProcess || s.PID > 0
		}
		out = append(out, sv)
	}
	return out, nil
}

// latin1 turns ISO-8859-1 bytes into UTF-8.
type latin1 struct{ r io.Reader }

func (l latin1) Read(p []byte) (int, error) {
	if len(p) < 2 {
		return 0, io.ErrShortBuffer
	}
	// Every byte takes at most two in UTF-8.
	buf := make([]byte, len(p)/2)
	n, err := l.r.Read(buf)
	out := p[:0]
	for _, b := range buf[:n] {
		out = utf8.AppendRune(out, rune(b))
	}
	return len(out), err
}

var (
	ansiRe = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	// 5.2: Process 'nats'   running
	legacyRe = regexp.MustCompile(`^(\w+) '([^']+)'\s+(.+?)\s*$`)
	// 5.33 batch: " nats    OK    Process"
	batchRe = regexp.MustCompile(`^ (\S+)\s+(.+?)\s{2,}(\S+)\s*$`)
)

// daemonErrors are what monit prints when its daemon does not answer.
var daemonErrors = []string{
	"cannot read status from the monit daemon",
	"the monit daemon is not running",
	"cannot create socket to",
	"cannot connect to", // 5.33 while its daemon is shutting down
	"error connecting to the monit daemon",
	"status not available",
}

// ParseSummary reads `monit summary` as monit 5.2 or 5.33 prints it, with
// or without a terminal. A monit that could not answer is a *DaemonError.
func ParseSummary(out []byte) ([]Service, error) {
	if len(out) > maxInput {
		return nil, fmt.Errorf("monit summary: %d bytes is more than monit prints", len(out))
	}
	text := ansiRe.ReplaceAll(out, nil)
	// ASCII lower case keeps every byte where it was, so that an index in
	// lower is one in text (bytes.ToLower widens an invalid byte to U+FFFD).
	lower := make([]byte, len(text))
	for i, b := range text {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		lower[i] = b
	}
	for _, e := range daemonErrors {
		if i := bytes.Index(lower, []byte(e)); i >= 0 {
			return nil, &DaemonError{Msg: strings.TrimSpace(firstLine(string(text[i:])))}
		}
	}
	var out2 []Service
	sawHeader := false
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), maxInput)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "The Monit daemon") || strings.HasPrefix(trimmed, "Monit "):
			sawHeader = true
			continue
		case strings.ContainsAny(trimmed, "┌├└─"):
			continue
		case strings.HasPrefix(trimmed, "│"):
			cells := strings.Split(strings.Trim(trimmed, "│"), "│")
			if len(cells) != 3 {
				return nil, fmt.Errorf("monit summary: table row %q has %d cells, want 3", trimmed, len(cells))
			}
			name, status, typ := strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])
			if name == "Service Name" {
				continue
			}
			if name == "" {
				return nil, fmt.Errorf("monit summary: table row %q names no service", trimmed)
			}
			out2 = append(out2, summaryService(name, typ, status))
		case legacyRe.MatchString(line):
			m := legacyRe.FindStringSubmatch(line)
			out2 = append(out2, summaryService(m[2], m[1], m[3]))
		case batchRe.MatchString(line):
			m := batchRe.FindStringSubmatch(line)
			if m[1] == "Service" && strings.HasPrefix(m[2], "Name") {
				continue
			}
			out2 = append(out2, summaryService(m[1], m[3], m[2]))
		default:
			return nil, fmt.Errorf("monit summary: cannot read line %q", trimmed)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("monit summary: %w", err)
	}
	if !sawHeader {
		return nil, errors.New("monit summary: no monit header: this is not monit's output")
	}
	return out2, nil
}

func summaryService(name, typ, status string) Service {
	s := strings.ToLower(status)
	return Service{Name: name, Type: typ, Status: status, Running: s == "ok" || s == "running" || s == "accessible" || s == "online with all services"}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
