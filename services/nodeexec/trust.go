package nodeexec

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// Trust asks a node's agent to verify the engine's NATS listener with the
// CA certificates of CA (PEM) from now on, instead of those it trusts: the
// old and the new CA while the agents' CA rotates, then the new alone. The
// agent keeps them in its config file, so that a restart trusts them too,
// and takes them for its next TLS handshake without dropping its
// connection. It is sealed as a Request is, under TrustKey, and good once
// and for a while (Time, Nonce; see Guard).
type Trust struct {
	V     int    `json:"v"`
	Node  string `json:"node"`
	CA    string `json:"ca"`
	Time  int64  `json:"time"`
	Nonce string `json:"nonce"`
}

// TrustReply is the agent's answer to a Trust: Error set when it refused
// it and trusts what it did before.
type TrustReply struct {
	V       int    `json:"v"`
	Version string `json:"version,omitempty"`
	Error   string `json:"error,omitempty"`
}

// TrustKey is the sealing key of node ip's Trust requests, derived from the
// node's agent password apart from Key, so that a sealed command of one
// kind is never taken for the other.
func TrustKey(agentPassword, ip string) []byte {
	m := hmac.New(sha256.New, []byte(agentPassword))
	m.Write([]byte("deployment-engine trust key v1\x00" + ip))
	return m.Sum(nil)
}

// ParseCAs reads a bundle of CA certificates in PEM: at least one, and
// nothing but CA certificates.
func ParseCAs(bundle string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(bundle)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("the CA bundle holds a %s block: only certificates belong there", b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the CA bundle: %w", err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("the CA bundle holds %s, which is not a CA", c.Subject)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("the CA bundle holds no PEM certificate")
	}
	return out, nil
}
