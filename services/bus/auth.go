package bus

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/deployment-engine/engine/services/subject"
)

// EngineUser is the user the engine's own services connect as.
const EngineUser = "engine"

// ObserverUser may follow the engine's events (de.evt.>) and nothing else:
// it is how other tools run `nats sub 'de.evt.>'`.
const ObserverUser = "observer"

// AgentUserPrefix starts every node agent's user name: node-10-0-0-5.
const AgentUserPrefix = "node-"

// auth lets in only the engine itself and node agents, each agent with
// permissions that stop at its own node's subjects. Agent passwords are
// derived from the engine's secret, so no user list needs reloading when
// nodes come and go.
type auth struct {
	enginePass   string
	mu           sync.RWMutex
	secret       []byte
	observerPass string
	// accounts are the named clusters' (clusters.go); clusterOf names
	// the cluster that holds a node, whose account its agent joins.
	accounts  map[string]*server.Account
	clusterOf func(ip string) string
}

// SetObserverPassword lets the observer user in with pw ("" keeps it out).
func (s *Server) SetObserverPassword(pw string) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	s.auth.observerPass = pw
}

// SetAgentSecret sets the secret agent passwords derive from; until it is
// set, no agent gets in.
func (s *Server) SetAgentSecret(secret []byte) {
	s.auth.mu.Lock()
	defer s.auth.mu.Unlock()
	s.auth.secret = append([]byte(nil), secret...)
}

// AgentPassword is the NATS password of the agent on ip.
func AgentPassword(secret []byte, ip string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("agent:" + ip))
	return hex.EncodeToString(m.Sum(nil))[:40]
}

// UploadToken is the token the node whose agent has password pass puts
// what it compiled on the engine with: derived from the password, so the
// engine and the installer, which both hold it, need no other secret, and
// the password itself is never sent over HTTP.
func UploadToken(pass string) string {
	m := hmac.New(sha256.New, []byte(pass))
	m.Write([]byte("compiled-upload"))
	return hex.EncodeToString(m.Sum(nil))[:40]
}

// AgentUser is the NATS user name of the agent on ip.
func AgentUser(ip string) string {
	tok, err := subject.IPToken(ip)
	if err != nil {
		return ""
	}
	return AgentUserPrefix + tok
}

// AgentPermissions let an agent publish and subscribe on its own node's
// subjects only, and answer the requests it is sent there.
func AgentPermissions(ip string) *server.Permissions {
	own := subject.NodeAll(ip)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: []string{own}},
		Subscribe: &server.SubjectPermission{Allow: []string{own}},
		Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute},
	}
}

// ObserverPermissions let the observer follow the engine's events (the
// default cluster's, and each named cluster's under its prefix) and
// publish nothing: the events' AsyncAPI document states them.
func ObserverPermissions() *server.Permissions {
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Deny: []string{">"}},
		Subscribe: &server.SubjectPermission{Allow: []string{subject.AllEvents, subject.AllClusterEvents}},
	}
}

func (a *auth) Check(c server.ClientAuthentication) bool {
	opts := c.GetOpts()
	if opts == nil {
		return false
	}
	if cluster, ok := engineCluster(opts.Username); ok {
		if subtle.ConstantTimeCompare([]byte(opts.Password), []byte(a.enginePass)) != 1 {
			return false
		}
		acc, ok := a.accountFor(cluster)
		if !ok {
			return false
		}
		c.RegisterUser(&server.User{Username: opts.Username, Account: acc})
		return true
	}
	if opts.Username == ObserverUser {
		a.mu.RLock()
		pw := a.observerPass
		a.mu.RUnlock()
		if pw == "" || subtle.ConstantTimeCompare([]byte(opts.Password), []byte(pw)) != 1 {
			return false
		}
		c.RegisterUser(&server.User{Username: ObserverUser, Permissions: ObserverPermissions()})
		return true
	}
	tok, ok := strings.CutPrefix(opts.Username, AgentUserPrefix)
	if !ok {
		return false
	}
	ip, err := subject.TokenIP(tok)
	if err != nil {
		return false
	}
	a.mu.RLock()
	secret, clusterOf := a.secret, a.clusterOf
	a.mu.RUnlock()
	if len(secret) == 0 {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(opts.Password), []byte(AgentPassword(secret, ip))) != 1 {
		return false
	}
	cluster := ""
	if clusterOf != nil {
		cluster = clusterOf(ip)
	}
	acc, ok := a.accountFor(cluster)
	if !ok {
		return false
	}
	c.RegisterUser(&server.User{Username: opts.Username, Permissions: AgentPermissions(ip), Account: acc})
	return true
}

// ConnectedAgents are the nodes whose agent is connected to this server
// now, by IP, each once.
func (s *Server) ConnectedAgents() ([]string, error) {
	cz, err := s.Connz(&server.ConnzOptions{Username: true, Limit: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("bus: list the connections: %w", err)
	}
	seen := map[string]bool{}
	var ips []string
	for _, c := range cz.Conns {
		tok, ok := strings.CutPrefix(c.AuthorizedUser, AgentUserPrefix)
		if !ok {
			continue
		}
		if ip, err := subject.TokenIP(tok); err == nil && !seen[ip] {
			seen[ip] = true
			ips = append(ips, ip)
		}
	}
	slices.Sort(ips)
	return ips, nil
}

// DisconnectAgent closes every connection of node ip's agent, which
// reconnects and so verifies the server's certificate again; it returns
// how many it closed.
func (s *Server) DisconnectAgent(ip string) (int, error) {
	cz, err := s.Connz(&server.ConnzOptions{Username: true, User: AgentUser(ip), Limit: 1 << 20})
	if err != nil {
		return 0, fmt.Errorf("bus: list the connections: %w", err)
	}
	n := 0
	for _, c := range cz.Conns {
		if err := s.DisconnectClientByID(c.Cid); err == nil {
			n++
		}
	}
	return n, nil
}
