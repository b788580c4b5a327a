package engine

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// TLSAuto asks for a self-signed pair made once in <data>/tls.
const TLSAuto = "auto"

// AutoCertFile and AutoKeyFile are the pair --tls auto makes, below the
// data dir. Clients trust the engine by pinning AutoCertFile.
const (
	AutoCertFile = "tls/cert.pem"
	AutoKeyFile  = "tls/key.pem"
)

// loadTLS returns the API's certificate: the given pair, or with --tls
// auto the pair in the data dir, made at first use (or the certificate it
// issued on a rotation); nil when TLS is off.
func loadTLS(o Options) (*apiCert, error) {
	certFile, keyFile := o.TLSCert, o.TLSKey
	switch {
	case o.TLS == TLSAuto:
		if certFile != "" || keyFile != "" {
			return nil, errors.New("--tls auto makes its own pair: give it no --tls-cert or --tls-key")
		}
		certFile, keyFile = filepath.Join(o.DataDir, AutoCertFile), filepath.Join(o.DataDir, AutoKeyFile)
		if err := ensureSelfSigned(certFile, keyFile, certHosts(o)); err != nil {
			return nil, err
		}
	case o.TLS != "":
		return nil, fmt.Errorf("--tls %q: the only value is auto (or give --tls-cert and --tls-key)", o.TLS)
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	default:
		if err := checkKeyMode(keyFile); err != nil {
			return nil, err
		}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load the TLS pair %s, %s: %w", certFile, keyFile, err)
	}
	return newAPICert(o, pair, o.TLS == TLSAuto)
}

// checkKeyMode refuses a private key file that another user of the
// machine may read: whoever reads it can impersonate the engine.
func checkKeyMode(keyFile string) error {
	st, err := os.Stat(keyFile)
	if err != nil {
		return fmt.Errorf("--tls-key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("--tls-key %s is open to group or others (mode %04o): a private key must be its owner's alone; run chmod 600 %s", keyFile, perm, keyFile)
	}
	return nil
}

// certHosts are the names an auto certificate is valid for: localhost,
// this machine's name and every address it has now, and the listen
// addresses' hosts.
func certHosts(o Options) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				hosts = append(hosts, ipn.IP.String())
			}
		}
	}
	for _, l := range []string{o.Listen, o.NATSListen} {
		if h, _, err := net.SplitHostPort(l); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// ensureSelfSigned makes a self-signed ECDSA pair unless both files exist.
func ensureSelfSigned(certFile, keyFile string, hosts []string) error {
	_, errC := os.Stat(certFile)
	_, errK := os.Stat(keyFile)
	if errC == nil && errK == nil {
		return nil
	}
	if !errors.Is(errC, fs.ErrNotExist) && errC != nil {
		return fmt.Errorf("--tls auto: %w", errC)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return fmt.Errorf("--tls auto: %w", err)
	}
	key, tmpl, _, err := serverCert("deployment-engine", time.Now().AddDate(10, 0, 0), hosts)
	if err != nil {
		return err
	}
	// Self-signed: it is its own CA.
	tmpl.KeyUsage |= x509.KeyUsageCertSign
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("--tls auto: make the certificate: %w", err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("--tls auto: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("--tls auto: %w", err)
	}
	return nil
}

// serverCert makes a P-256 key and a server certificate template for it,
// valid from an hour ago until notAfter, for hosts (IP addresses and DNS
// names, each once, empty ones skipped), which it returns as named.
func serverCert(cn string, notAfter time.Time, hosts []string) (*ecdsa.PrivateKey, *x509.Certificate, []string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"deployment-engine"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	var named []string
	for _, h := range hosts {
		if h == "" || slices.Contains(named, h) {
			continue
		}
		named = append(named, h)
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return key, tmpl, named, nil
}

// splitListener hands TLS connections (their first byte is a handshake
// record, 0x16) to one listener and plain ones to another: with TLS on,
// nodes still fetch the public, read-only mirror over plain HTTP on the
// same port, and nothing else is served there.
type splitListener struct {
	net.Listener
	tls, plain *chanListener
	once       sync.Once
}

func newSplitListener(ln net.Listener) *splitListener {
	s := &splitListener{Listener: ln, tls: newChanListener(ln.Addr()), plain: newChanListener(ln.Addr())}
	go s.run()
	return s
}

func (s *splitListener) run() {
	defer s.close()
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		go s.route(c)
	}
}

func (s *splitListener) route(c net.Conn) {
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	if b[0] == 0x16 {
		s.tls.put(pc)
	} else {
		s.plain.put(pc)
	}
}

func (s *splitListener) close() {
	s.once.Do(func() {
		s.tls.close()
		s.plain.close()
	})
}

func (s *splitListener) Close() error {
	err := s.Listener.Close()
	s.close()
	return err
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) { return p.r.Read(b) }

// chanListener is a net.Listener fed by splitListener.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) put(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }

// plainOnly serves, over plain HTTP beside TLS, what nodes fetch without a
// token — the mirror, the agent's binary, releases' packages, health — and
// refuses the rest without reading it, so that no token travels in clear.
func plainOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/healthz" || strings.HasPrefix(p, "/mirror/") || strings.HasPrefix(p, "/agent/") || strings.HasPrefix(p, "/releases/") {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "application/json;charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(contract.ErrorBody{Error: "this engine serves its API over https only: use https://" + contract.Clip(r.Host)})
	})
}

// natsCerts is the TLS of the NATS listener for agents: with --tls-cert
// (and not --tls auto) that pair as it is, else certificates issued by the
// agents' own CA once a rotation made one, or by the auto pair in the data
// dir (made at first use), which agents pin.
func natsCerts(o Options, pinnedHost string) (*agentCerts, error) {
	certFile, keyFile := o.TLSCert, o.TLSKey
	given := true
	if certFile == "" || o.TLS == TLSAuto {
		certFile, keyFile, given = filepath.Join(o.DataDir, AutoCertFile), filepath.Join(o.DataDir, AutoKeyFile), false
		if err := ensureSelfSigned(certFile, keyFile, certHosts(o)); err != nil {
			return nil, err
		}
		// The API keeps the auto pair; the agents' own CA takes its
		// place for them alone.
		own, ownKey, err := loadAgentsCA(o.DataDir, o.Logger)
		if err != nil {
			return nil, err
		}
		if own != "" {
			certFile, keyFile = own, ownKey
		}
	}
	c, err := newAgentCerts(certFile, keyFile, []string{"127.0.0.1", "::1", "localhost", pinnedHost})
	if c != nil {
		c.given = given
		if !given {
			c.dataDir = o.DataDir
		}
	}
	return c, err
}
