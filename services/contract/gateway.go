package contract

import (
	"net"
	"strconv"
)

// Gateway is a jump host: when the config names one, every SSH connection
// to a node is made through it, as OpenSSH's ProxyJump does (the engine
// logs in to the gateway, then asks it for a TCP channel to the node's
// sshd). The nodes need not be reachable from the control machine; they
// still reach the engine at properties.home.
//
//	{"host": "10.0.0.9", "user": "root", "key": "/root/.ssh/id_ed25519", "port": 22}
type Gateway struct {
	Host string `json:"host"`
	// User is who the engine logs in to the gateway as; root when empty.
	User string `json:"user,omitempty"`
	// Key is a path on the control machine or the PEM text of the SSH
	// private key for User on the gateway: a secret, like properties.key.
	Key string `json:"key,omitempty"`
	// Port is the gateway's sshd port; 22 when 0.
	Port int `json:"port,omitempty"`
}

// LoginUser is who the engine logs in to the gateway as.
func (g Gateway) LoginUser() string {
	if g.User == "" {
		return "root"
	}
	return g.User
}

// Addr is the gateway's sshd address, host:port.
func (g Gateway) Addr() string {
	port := g.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(g.Host, strconv.Itoa(port))
}

// JumpHost is the config's gateway as the engine logs in to it: its own
// key, else the nodes' key; nil without a gateway.
func (p Properties) JumpHost() *Gateway {
	if p.Gateway == nil {
		return nil
	}
	g := *p.Gateway
	if g.Key == "" {
		g.Key = p.Key
	}
	return &g
}

// NodeAuth is how the engine logs in to the nodes of a config: the root
// password, the key, and the gateway it goes through.
func (p Properties) NodeAuth() Auth {
	return Auth{Password: p.Root, Key: p.Key, Gateway: p.JumpHost(), Keys: p.NodeKeys, Users: p.NodeUsers}
}
