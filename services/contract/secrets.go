package contract

import "slices"

// SecretHosts records, for each secret of the config that is offered to
// nodes (the root password, the adduser password), the nodes it was given
// for: those of a config posted with the secret in clear. A secret kept
// with the redaction marker goes only to these nodes, so that a client
// with the API token cannot send it to a host of its choosing.
//
//	{"v": 1, "hosts": {"root": ["10.0.0.1", "10.0.0.2"], "password": ["10.0.0.1"]}}
type SecretHosts struct {
	V     int                 `json:"v"`
	Hosts map[string][]string `json:"hosts"`
}

// Allowed tells whether the secret may go to ip.
func (s SecretHosts) Allowed(name, ip string) bool {
	return slices.Contains(s.Hosts[name], ip)
}

// OfferedSecrets are the config's secrets that are sent to nodes; the
// key never is (only its signature is).
var OfferedSecrets = []string{"root", "password"}

// GivenSecrets names the offered secrets that c carries in clear, as
// posted (before the redaction marker is replaced by the kept secret).
func (c Config) GivenSecrets() map[string]bool {
	out := map[string]bool{}
	all := c.Properties.Secrets()
	for _, name := range OfferedSecrets {
		if v := all[name]; v != nil && *v != "" && *v != Redacted {
			out[name] = true
		}
	}
	return out
}

// UsesSecret tells whether c sends the named offered secret to its nodes.
func (c Config) UsesSecret(name string) bool {
	p := c.Properties
	switch name {
	case "root":
		return p.Root != ""
	case "password":
		return p.Adduser.N == 1 && p.Password != ""
	}
	return false
}
