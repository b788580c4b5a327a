package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/deployment-engine/engine/services/contract"
)

// followLogs: logs --follow COMP [IP] [--tail N] prints the component's
// log lines as they come, "NODE COMPONENT LINE" (--json: each line's
// object), until Ctrl-C, which ends it with exit 0.
func (s *session) followLogs(ctx context.Context) int {
	if code := s.begin(len(s.args) == 1 || len(s.args) == 2, "logs --follow takes COMP and optionally IP"); code != exitOK {
		return code
	}
	if s.tail < 0 {
		return s.usage("--tail takes a number of lines, 0 or more")
	}
	ip := ""
	if len(s.args) == 2 {
		ip = s.args[1]
	}
	err := s.c.FollowLogs(ctx, s.args[0], ip, s.tail, func(l contract.FollowLine) error {
		if s.json {
			b, err := json.Marshal(l)
			if err != nil {
				return fmt.Errorf("encode line: %w", err)
			}
			_, err = fmt.Fprintf(s.stdout, "%s\n", b)
			return err
		}
		_, err := fmt.Fprintf(s.stdout, "%s %s %s\n", l.Node, l.Component, escapeLine(l.Line))
		return err
	})
	if err != nil {
		return s.fail(err)
	}
	return exitOK
}

// escapeLine escapes what a node's line could do to a terminal: control
// characters (an escape sequence, a carriage return) and the bidirectional
// overrides show as Go escapes; a tab stays.
func escapeLine(s string) string {
	if strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r == unicode.ReplacementChar {
			b.WriteString(`\ufffd`) // a byte that is not UTF-8
			continue
		}
		if unsafeRune(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r != '\t' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == unicode.ReplacementChar)
}
