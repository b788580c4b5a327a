package logsvc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/deployment-engine/engine/services/contract"
	"github.com/deployment-engine/engine/services/subject"
)

// Each message that reaches the store becomes at most one line of one
// file: these functions decode it, choose the file and write the line
// that format.go's functions make of it.

// event turns one DE_EVENTS message into at most one line.
func (s *Service) event(subj string, data []byte, ts time.Time) {
	ev, err := subject.ParseEvent(subj)
	if err != nil {
		s.skip(subj, err)
		return
	}
	switch ev.Family {
	case subject.FamilyLog:
		ls, err := subject.ParseLog(subj)
		var l contract.LogLine
		if s.readBody(subj, err, data, &l.V, &l) {
			s.instanceLine(ls.Component, ls.IP, l, false)
		}
	case subject.FamilyComponent:
		cs, err := subject.ParseComponent(subj)
		var e contract.ComponentEvent
		if s.readBody(subj, err, data, &e.V, &e) {
			s.put(LocalLog, appendComponent(s.start(e.Time, ts), cs.Component, cs.IP, cs.Up, e.Reason))
		}
	case subject.FamilyEngine:
		var e contract.EngineEvent
		if s.readBody(subj, nil, data, &e.V, &e) {
			s.put(LocalLog, appendEngine(s.start(e.Time, ts), e))
		}
	case subject.FamilyDeploy:
		switch kind := subject.DeployEventKind(ev.Kind); kind {
		case subject.DeployStep:
			var e contract.StepEvent
			if s.readBody(subj, nil, data, &e.V, &e) && e.State == contract.StateFailed {
				s.put(LocalLog, appendStepFailed(s.start(timeOr(e.Finished), ts), e))
			}
		case subject.DeployStarted, subject.DeployFinished:
			var e contract.DeploymentEvent
			if s.readBody(subj, nil, data, &e.V, &e) {
				s.put(LocalLog, appendDeployment(s.start(e.Time, ts), e, kind == subject.DeployStarted))
			}
		}
	}
	// Audit and heal events have logs of their own.
}

// runtimeLine writes a line an agent read from one of a component's log
// files (de.node.<ip>.log.<component>).
func (s *Service) runtimeLine(subj string, data []byte) {
	ns, err := subject.ParseNodeLog(subj)
	var l contract.LogLine
	if s.readBody(subj, err, data, &l.V, &l) {
		s.instanceLine(ns.Component, ns.IP, l, true)
	}
}

// readBody decodes a message's body into dst once its subject parsed (perr
// nil); a message it cannot read is skipped and it returns false.
func (s *Service) readBody(subj string, perr error, data []byte, v *int, dst any) bool {
	err := perr
	if err == nil {
		err = s.decode(data, v, dst)
	}
	if err != nil {
		s.skip(subj, err)
		return false
	}
	return true
}

// instanceLine writes l into its instance's file. An install line (from
// the installer) that belongs to no instance of the config goes to
// local.log, prefixed with its node: the nodes' own steps (_node) write
// there. A runtime line comes from an agent, which may publish only on its
// own node's subjects: it goes into one of that node's instance files or
// nowhere, never into local.log, whatever its component or body say.
func (s *Service) instanceLine(component, ip string, l contract.LogLine, runtime bool) {
	name := s.instanceFile(component, ip)
	if runtime {
		if name == "" {
			// Not logged per line: an agent could flood the engine's log.
			s.metrics.skipped.Inc()
			return
		}
		// Install output arrives redacted by the installer; a service's
		// own log is the node's, so the config's secrets come out here.
		l.Line = s.cache.redact(l.Line)
	}
	prefix := ""
	if name == "" {
		name = LocalLog
		prefix = ip + " " + component + " "
	}
	s.put(name, appendInstanceLine(s.start(l.Time, time.Time{}), prefix, l, runtime))
}

// instanceFile is the file of component's instance on ip, or "" when the
// config places no instance of component there.
func (s *Service) instanceFile(component, ip string) string {
	n, ok := s.cache.position(component, ip, s.batch)
	if !ok {
		return ""
	}
	if fn := component + "_" + strconv.Itoa(n) + ".log"; ValidName(fn) {
		return fn
	}
	return ""
}

// start begins a line in the scratch buffer with its time: t, else the
// fallback, else now.
func (s *Service) start(t, fallback time.Time) []byte {
	if t.IsZero() {
		t = fallback
	}
	if t.IsZero() {
		t = time.Now()
	}
	b := t.UTC().AppendFormat(s.scratch[:0], time.RFC3339)
	return append(b, ' ')
}

func (s *Service) put(name string, b []byte) {
	b = append(b, '\n')
	s.scratch = b
	if err := s.st.write(name, b); err != nil {
		s.log.Error("write log", "log", name, "err", err)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBadName) {
			// Not a file we may write (a link planted in the store):
			// trying again would not help.
			s.metrics.skipped.Inc()
		} else {
			s.failed = true
		}
		return
	}
	s.written.Add(1)
	s.metrics.lines.Inc()
	s.metrics.bytes.Add(float64(len(b)))
}

// decode reads a JSON body, refusing versions newer than this reader.
func (s *Service) decode(data []byte, v *int, dst any) error {
	if err := json.Unmarshal(data, dst); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if *v > contract.Version {
		return fmt.Errorf("body version %d is newer than %d", *v, contract.Version)
	}
	return nil
}

// skip notes a message it cannot write. The body is not logged: it may
// hold a line of a node's output.
func (s *Service) skip(subj string, err error) {
	s.metrics.skipped.Inc()
	s.log.Warn("skipped a message", "subject", subj, "err", err)
}
