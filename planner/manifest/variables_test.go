package manifest

import (
	"crypto/x509"
	"encoding/pem"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func parseCert(t *testing.T, s any) *x509.Certificate {
	t.Helper()
	str, _ := s.(string)
	b, _ := pem.Decode([]byte(str))
	if b == nil {
		t.Fatalf("no PEM: %q", str)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The four types BOSH generates, a leaf declared before its CA, and a
// value already given left as it is.
func TestGenerate(t *testing.T) {
	doc := mustDecode(t, `
variables:
- name: server_tls
  type: certificate
  options: {ca: default_ca, common_name: db.internal, alternative_names: [db.internal, 10.0.0.5], extended_key_usage: [server_auth], duration: 30}
- name: default_ca
  type: certificate
  options: {is_ca: true, common_name: ca}
- {name: admin_password, type: password}
- {name: given_password, type: password}
- {name: jwt, type: rsa}
- {name: jumpbox_ssh, type: ssh}
`)
	decl, err := Variables(doc)
	if err != nil {
		t.Fatal(err)
	}
	vars := Vars{"given_password": "kept"}
	made, err := Generate(decl, vars)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(made, " ") != "default_ca server_tls admin_password jwt jumpbox_ssh" {
		t.Errorf("made %q", made)
	}
	if vars["given_password"] != "kept" {
		t.Errorf("a given value was replaced: %v", vars["given_password"])
	}
	if pw, _ := vars["admin_password"].(string); !regexp.MustCompile(`^[a-z0-9]{20}$`).MatchString(pw) {
		t.Errorf("password %q", pw)
	}

	ca := parseCert(t, vars["default_ca"].(map[string]any)["certificate"])
	leaf := vars["server_tls"].(map[string]any)
	cert := parseCert(t, leaf["certificate"])
	if !ca.IsCA || cert.IsCA {
		t.Errorf("is_ca: ca %v, leaf %v", ca.IsCA, cert.IsCA)
	}
	if leaf["ca"] != vars["default_ca"].(map[string]any)["certificate"] {
		t.Error("the leaf's ca is not its CA's certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, name := range []string{"db.internal", "10.0.0.5"} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("the leaf does not verify for %s under its CA: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "other.internal"}); err == nil {
		t.Error("the leaf verifies for a name it was not given")
	}
	if d := cert.NotAfter.Sub(cert.NotBefore).Hours() / 24; d < 30 || d > 31 {
		t.Errorf("duration %.1f days, want 30", d)
	}
	if !strings.Contains(leaf["private_key"].(string), "RSA PRIVATE KEY") {
		t.Error("no private key")
	}

	sshv := vars["jumpbox_ssh"].(map[string]any)
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(sshv["public_key"].(string)))
	if err != nil {
		t.Fatalf("ssh public_key: %v", err)
	}
	if ssh.FingerprintLegacyMD5(pub) != sshv["public_key_fingerprint"] {
		t.Error("the fingerprint is not the key's")
	}
	if _, err := ssh.ParsePrivateKey([]byte(sshv["private_key"].(string))); err != nil {
		t.Errorf("ssh private_key: %v", err)
	}
	if !strings.Contains(vars["jwt"].(map[string]any)["public_key"].(string), "PUBLIC KEY") {
		t.Error("rsa public_key")
	}

	// A second run generates nothing: the values are there.
	if again, err := Generate(decl, vars); err != nil || len(again) != 0 {
		t.Errorf("second run made %q, %v", again, err)
	}
}

func TestVariablesErrors(t *testing.T) {
	cases := []struct{ doc, err string }{
		{`variables: {a: 1}`, "a list of"},
		{`variables: [{type: password}]`, "needs a name"},
		{`variables: [{name: x, type: value}]`, `type "value"; the engine generates password, certificate, rsa and ssh`},
		{`variables: [{name: x, type: password}, {name: x, type: rsa}]`, "declared twice"},
		{`variables: [{name: x, type: certificate, options: {common_name: x}}]`, "names the ca that signs it"},
		{`variables: [{name: x, type: certificate, options: {ca: c, extended_key_usage: [code_signing]}}]`, "server_auth or client_auth"},
		{`variables: [{name: x, type: certificate, options: {ca: c, duration: 0}}]`, "1 to 36500"},
	}
	for _, c := range cases {
		if _, err := Variables(mustDecode(t, c.doc)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one with %q", c.doc, err, c.err)
		}
	}
	gen := []struct{ doc, err string }{
		{`variables: [{name: x, type: certificate, options: {ca: nope, common_name: x}}]`, "its ca nope is neither declared nor given"},
		{`variables: [{name: x, type: certificate, options: {ca: x, is_ca: true}}]`, "ca chain comes back"},
		{`variables: [{name: x, type: certificate, options: {ca: p, common_name: x}}, {name: p, type: password}]`, "ca p: no certificate"},
		{`variables: [{name: x, type: certificate, options: {ca: y, common_name: x}}, {name: y, type: certificate, options: {ca: z, common_name: y}}, {name: z, type: certificate, options: {is_ca: true}}]`, "ca y is not a CA"},
	}
	for _, c := range gen {
		decl, err := Variables(mustDecode(t, c.doc))
		if err != nil {
			t.Fatalf("%s: %v", c.doc, err)
		}
		if _, err := Generate(decl, Vars{}); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one with %q", c.doc, err, c.err)
		}
	}
}
