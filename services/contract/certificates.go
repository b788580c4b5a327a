package contract

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// The certificates the engine makes or serves, by name.
const (
	// CertAgentsCA is what node agents pin: the CA that issues the agents'
	// NATS listener its certificate (with --tls auto or no TLS flag, the
	// pair in <data>/tls, which also serves the API under --tls auto, until
	// a rotation gives the agents a CA of their own).
	CertAgentsCA = "agents-ca"
	// CertAgentsListener is what the NATS listener for agents presents.
	CertAgentsListener = "agents-listener"
	// CertAPI is what the API presents over https.
	CertAPI = "api"
)

// Where a certificate comes from: the engine made it, or it was given one
// (--tls-cert).
const (
	CertMade  = "made"
	CertGiven = "given"
)

// CertificateWarnDays are the thresholds, in days left, at which an
// expiring certificate raises an engine event (kind EventCertificate)
// and a webhook notification, once each per certificate.
var CertificateWarnDays = []int{30, 7}

// EventCertificate is the engine event kind of a certificate near its
// expiry (de.evt.engine.certificate); webhooks see it as
// "certificate.expiring".
const EventCertificate = "certificate"

// Certificate is one certificate of the engine as GET /certificates shows
// it: what it says of itself, never its key. SecondsLeft is counted when
// it is read (negative once expired).
//
//	{"name": "agents-ca", "subject": "CN=deployment-engine,O=deployment-engine", "issuer": "...",
//	 "dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"], "serial": "1f3a…", "sha256": "ab12…",
//	 "not_before": "...", "not_after": "...", "seconds_left": 315360000, "is_ca": true, "source": "made"}
type Certificate struct {
	Name        string    `json:"name"`
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	DNSNames    []string  `json:"dns_names"`
	IPAddresses []string  `json:"ip_addresses"`
	Serial      string    `json:"serial"`
	SHA256      string    `json:"sha256"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	SecondsLeft int64     `json:"seconds_left"`
	IsCA        bool      `json:"is_ca"`
	Source      string    `json:"source"`
}

// Certificates is GET /certificates' answer, by name.
//
//	{"v": 1, "certificates": [{"name": "agents-ca", ...}, {"name": "agents-listener", ...}]}
type Certificates struct {
	V            int           `json:"v"`
	Certificates []Certificate `json:"certificates"`
}

// DescribeCertificate is what c says of itself, under name, from source
// (CertMade or CertGiven), with its seconds left at now.
func DescribeCertificate(name, source string, c *x509.Certificate, now time.Time) Certificate {
	sum := sha256.Sum256(c.Raw)
	out := Certificate{
		Name: name, Subject: c.Subject.String(), Issuer: c.Issuer.String(),
		DNSNames: append([]string{}, c.DNSNames...), IPAddresses: make([]string, 0, len(c.IPAddresses)),
		Serial: c.SerialNumber.Text(16), SHA256: hex.EncodeToString(sum[:]),
		NotBefore: c.NotBefore.UTC(), NotAfter: c.NotAfter.UTC(), IsCA: c.IsCA, Source: source,
	}
	for _, ip := range c.IPAddresses {
		out.IPAddresses = append(out.IPAddresses, ip.String())
	}
	return out.At(now)
}

// At is c with its seconds left counted at now.
func (c Certificate) At(now time.Time) Certificate {
	c.SecondsLeft = int64(c.NotAfter.Sub(now) / time.Second)
	return c
}

// WarnThreshold is the smallest of CertificateWarnDays that c, at now,
// has fewer days left than, or 0 when it has more than all of them.
func (c Certificate) WarnThreshold(now time.Time) int {
	left := c.NotAfter.Sub(now)
	th := 0
	for _, d := range CertificateWarnDays {
		if left < time.Duration(d)*24*time.Hour && (th == 0 || d < th) {
			th = d
		}
	}
	return th
}

// DaysLeft is c's whole days left at now (negative once expired).
func (c Certificate) DaysLeft(now time.Time) int {
	return int(c.NotAfter.Sub(now).Hours() / 24)
}

// Expiring says in words that c has fewer than days left, as its engine
// event and webhook say it.
func (c Certificate) Expiring(days int, now time.Time) string {
	if !now.Before(c.NotAfter) {
		return fmt.Sprintf("certificate %s (%s) EXPIRED at %s", c.Name, c.Subject, c.NotAfter.Format(time.RFC3339))
	}
	return fmt.Sprintf("certificate %s (%s) expires at %s: %d days left, fewer than %d",
		c.Name, c.Subject, c.NotAfter.Format(time.RFC3339), c.DaysLeft(now), days)
}

// CertificateRotate asks the process holding certificate Name to issue it
// again (de.cmd.certificates.rotate-<name>).
type CertificateRotate struct {
	V     int    `json:"v"`
	Name  string `json:"name"`
	Actor string `json:"actor,omitempty"`
}

// CertificateRotated is POST /certificates/{name}/rotate's answer: the
// certificate now served and the serial of the one it replaced. For the
// agents' CA it also names the nodes whose agent took the new CA, and
// those whose agent did not (not connected, or it did not answer): these
// get it at the next deploy's agent step.
//
//	{"v": 1, "certificate": {"name": "api", "serial": "4be1…", ...}, "previous_serial": "1f3a…"}
type CertificateRotated struct {
	V              int           `json:"v"`
	Certificate    Certificate   `json:"certificate"`
	PreviousSerial string        `json:"previous_serial"`
	AgentsUpdated  []string      `json:"agents_updated,omitempty"`
	AgentsMissed   []AgentMissed `json:"agents_missed,omitempty"`
}

// AgentMissed is a node whose agent did not take the agents' new CA, and
// why: until the next deploy's agent step gives it the new CA, it cannot
// reach the engine again once its connection drops (or, when it took the
// old and the new but not the new alone, it still trusts the old one too).
type AgentMissed struct {
	Node  string `json:"node"`
	Error string `json:"error"`
}
