package manifest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/deployment-engine/engine/planner/manifest/patch"
)

// Variable is one entry of a manifest's `variables` section.
type Variable struct {
	Name    string
	Type    string // password, certificate, rsa or ssh
	Options CertOptions
}

// CertOptions are a certificate variable's options, as BOSH names them.
type CertOptions struct {
	CA               string   // the name of the certificate variable that signs it
	CommonName       string   // common_name
	AlternativeNames []string // alternative_names: DNS names and IPs
	ExtendedKeyUsage []string // extended_key_usage: server_auth, client_auth
	IsCA             bool     // is_ca
	Duration         int      // duration in days; 365 when absent
}

// Digest names a variable's type and options: a kept value was generated
// with other options when its digest differs.
func (v Variable) Digest() string {
	b, _ := json.Marshal(struct {
		T string
		O CertOptions
	}{v.Type, v.Options})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Variables reads doc's `variables` section.
func Variables(doc any) ([]Variable, error) {
	root, _ := doc.(map[string]any)
	list, ok := root["variables"].([]any)
	if !ok {
		if root["variables"] != nil {
			return nil, fmt.Errorf("variables: a list of {name, type, options}")
		}
		return nil, nil
	}
	var out []Variable
	seen := map[string]bool{}
	for i, it := range list {
		v, err := readVariable(it)
		if err != nil {
			return nil, fmt.Errorf("variables[%d]: %w", i, err)
		}
		if seen[v.Name] {
			return nil, fmt.Errorf("variables[%d]: %s is declared twice", i, v.Name)
		}
		seen[v.Name] = true
		out = append(out, v)
	}
	return out, nil
}

func readVariable(it any) (Variable, error) {
	m, ok := it.(map[string]any)
	if !ok {
		return Variable{}, fmt.Errorf("want {name, type, options}, found %s", patch.Kind(it))
	}
	v := Variable{}
	v.Name, _ = m["name"].(string)
	v.Type, _ = m["type"].(string)
	if v.Name == "" {
		return v, fmt.Errorf("a variable needs a name")
	}
	switch v.Type {
	case "password", "rsa", "ssh":
	case "certificate":
		opts, _ := m["options"].(map[string]any)
		if err := v.Options.read(opts); err != nil {
			return v, fmt.Errorf("%s: %w", v.Name, err)
		}
	default:
		return v, fmt.Errorf("%s: type %q; the engine generates password, certificate, rsa and ssh", v.Name, v.Type)
	}
	return v, nil
}

func (o *CertOptions) read(m map[string]any) error {
	o.CA, _ = m["ca"].(string)
	o.CommonName, _ = m["common_name"].(string)
	o.IsCA, _ = m["is_ca"].(bool)
	o.Duration = 365
	if d, ok := m["duration"].(int); ok {
		if d < 1 || d > 100*365 {
			return fmt.Errorf("duration %d days: 1 to 36500", d)
		}
		o.Duration = d
	}
	for _, f := range []struct {
		key string
		dst *[]string
	}{{"alternative_names", &o.AlternativeNames}, {"extended_key_usage", &o.ExtendedKeyUsage}} {
		list, _ := m[f.key].([]any)
		for _, x := range list {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("%s: strings only, found %s", f.key, patch.Kind(x))
			}
			*f.dst = append(*f.dst, s)
		}
	}
	for _, u := range o.ExtendedKeyUsage {
		if u != "server_auth" && u != "client_auth" {
			return fmt.Errorf("extended_key_usage %q: server_auth or client_auth", u)
		}
	}
	if !o.IsCA && o.CA == "" {
		return fmt.Errorf("a certificate that is no CA (is_ca) names the ca that signs it")
	}
	return nil
}

// Generate gives each declared variable that vars lacks a value, as the
// BOSH CLI's --vars-store does, and returns the names it generated. A
// certificate's CA is generated (or taken from vars) before it.
func Generate(decl []Variable, vars Vars) ([]string, error) {
	byName := map[string]Variable{}
	for _, v := range decl {
		byName[v.Name] = v
	}
	var made []string
	visiting := map[string]bool{}
	var gen func(v Variable) error
	gen = func(v Variable) error {
		if _, ok := vars[v.Name]; ok {
			return nil
		}
		if visiting[v.Name] {
			return fmt.Errorf("%s: its ca chain comes back to it", v.Name)
		}
		visiting[v.Name] = true
		var val any
		var err error
		switch v.Type {
		case "password":
			val, err = password()
		case "rsa":
			val, err = rsaPair()
		case "ssh":
			val, err = sshPair()
		case "certificate":
			if v.Options.CA != "" {
				if d, ok := byName[v.Options.CA]; ok {
					if err := gen(d); err != nil {
						return err
					}
				} else if _, given := vars[v.Options.CA]; !given {
					return fmt.Errorf("%s: its ca %s is neither declared nor given", v.Name, v.Options.CA)
				}
			}
			val, err = certificate(v, vars)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", v.Name, err)
		}
		vars[v.Name] = val
		made = append(made, v.Name)
		return nil
	}
	for _, v := range decl {
		if err := gen(v); err != nil {
			return made, err
		}
	}
	return made, nil
}

// password is 20 characters of [a-z0-9], as BOSH generates them.
func password() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 20)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", err
		}
		b[i] = alphabet[n.Int64()]
	}
	return string(b), nil
}

func rsaKey() (*rsa.PrivateKey, string, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, "", err
	}
	return k, string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})), nil
}

func rsaPair() (map[string]any, error) {
	k, priv, err := rsaKey()
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return map[string]any{"private_key": priv, "public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))}, nil
}

func sshPair() (map[string]any, error) {
	k, priv, err := rsaKey()
	if err != nil {
		return nil, err
	}
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"private_key":            priv,
		"public_key":             strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
		"public_key_fingerprint": ssh.FingerprintLegacyMD5(pub),
	}, nil
}

// certificate is {ca, certificate, private_key}, signed by its ca (taken
// from vars) or by itself when it is a CA with none.
func certificate(v Variable, vars Vars) (map[string]any, error) {
	o := v.Options
	key, priv, err := rsaKey()
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.CommonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(0, 0, o.Duration),
		BasicConstraintsValid: true,
		IsCA:                  o.IsCA,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	if o.IsCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	}
	for _, n := range o.AlternativeNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	for _, u := range o.ExtendedKeyUsage {
		if u == "server_auth" {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		} else {
			tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		}
	}
	parent, signer, caPEM := tmpl, any(key), ""
	if o.CA != "" {
		caCert, caKey, pemText, err := loadCA(o.CA, vars)
		if err != nil {
			return nil, err
		}
		parent, signer, caPEM = caCert, caKey, pemText
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	certPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if caPEM == "" {
		caPEM = certPEM
	}
	return map[string]any{"ca": caPEM, "certificate": certPEM, "private_key": priv}, nil
}

// loadCA reads the certificate variable name from vars, as a signer.
func loadCA(name string, vars Vars) (*x509.Certificate, any, string, error) {
	m, _ := vars[name].(map[string]any)
	certPEM, _ := m["certificate"].(string)
	keyPEM, _ := m["private_key"].(string)
	cb, _ := pem.Decode([]byte(certPEM))
	kb, _ := pem.Decode([]byte(keyPEM))
	if cb == nil || kb == nil {
		return nil, nil, "", fmt.Errorf("ca %s: no certificate and private_key in PEM", name)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, "", fmt.Errorf("ca %s: %w", name, err)
	}
	if !cert.IsCA {
		return nil, nil, "", fmt.Errorf("ca %s is not a CA certificate (is_ca)", name)
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		k8, err8 := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err8 != nil {
			return nil, nil, "", fmt.Errorf("ca %s: private key: %w", name, err)
		}
		return cert, k8, certPEM, nil
	}
	return cert, key, certPEM, nil
}
