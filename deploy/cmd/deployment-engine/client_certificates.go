package main

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/deployment-engine/engine/services/contract"
)

func init() { commands["certificates"] = clientCommand("certificates", certificatesCmd) }

// certificatesCmd: certificates [rotate NAME] — every certificate the
// engine made or serves, and when it expires; or issue one again.
func certificatesCmd(ctx context.Context, s *session) int {
	if len(s.args) > 0 && s.args[0] == "rotate" {
		return rotateCmd(ctx, s)
	}
	if code := s.begin(len(s.args) == 0, "certificates takes no argument, or rotate NAME"); code != exitOK {
		return code
	}
	certs, raw, err := s.c.Certificates(ctx)
	return s.answer(raw, err, func() {
		if len(certs.Certificates) == 0 {
			fmt.Fprintln(s.stdout, "no certificate listed: the engine serves no TLS, or has not written its summary yet")
			return
		}
		now := time.Now()
		tw := table(s.stdout, "NAME\tSUBJECT\tEXPIRES\tDAYS LEFT")
		for _, c := range certs.Certificates {
			days := fmt.Sprint(c.DaysLeft(now))
			switch {
			case !now.Before(c.NotAfter):
				days = "EXPIRED"
			case c.WarnThreshold(now) > 0:
				days += " !"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, printable(c.Subject), c.NotAfter.Local().Format("2006-01-02 15:04"), days)
		}
		_ = tw.Flush()
	})
}

// rotateCmd: certificates rotate NAME — the engine issues the certificate
// again and serves the new one without a restart; for the agents' CA, it
// says which agents took the new one and which did not.
func rotateCmd(ctx context.Context, s *session) int {
	if code := s.begin(len(s.args) == 2, "certificates rotate takes a certificate's name (api, agents-listener, agents-ca)"); code != exitOK {
		return code
	}
	got, raw, err := s.c.RotateCertificate(ctx, s.args[1])
	return s.answer(raw, err, func() {
		c := got.Certificate
		fmt.Fprintf(s.stdout, "%s issued again: serial %s (was %s), valid until %s; served from the next connection\n",
			c.Name, c.Serial, got.PreviousSerial, c.NotAfter.Local().Format("2006-01-02 15:04"))
		if c.Name != contract.CertAgentsCA {
			return
		}
		fmt.Fprintf(s.stdout, "%d agents trust the new CA alone\n", len(got.AgentsUpdated))
		for _, m := range got.AgentsMissed {
			fmt.Fprintf(s.stderr, "agent %s: %s\n", printable(m.Node), printable(m.Error))
		}
		if len(got.AgentsMissed) > 0 {
			fmt.Fprintf(s.stderr, "%d agents did not take the new CA: the next deploy gives it to them\n", len(got.AgentsMissed))
		}
	})
}

// printable drops the control characters a given certificate's subject
// may hold, so that it cannot move the terminal's cursor or colour it.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
