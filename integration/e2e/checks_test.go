package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/deployment-engine/engine/integration/harness"
	"github.com/deployment-engine/engine/integration/testbed"
)

// checkCatalogs writes catalogs whose components are the e2e catalog's
// test services, each declaring something else of the nodes: where the
// domain must lead (lb), the system it supports, the disk it needs.
func checkCatalogs(t *testing.T) string {
	t.Helper()
	src, err := os.ReadDir("testdata/catalogs/e2e/templates")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, extra, min string) {
		tdir := filepath.Join(dir, name, "templates")
		if err := os.MkdirAll(tdir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range src {
			b, err := os.ReadFile(filepath.Join("testdata/catalogs/e2e/templates", f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(tdir, f.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cat := `{"name": "` + name + `", "description": "pre-check test", "default": {"cpu": 1, "ram_mb": 64, "disk_mb": 64},` + extra + `
  "components": {
    "lb": {"role": "load balancer", "instances": "one", "install": "install.sh", "process": "lb", "monit": "svc.monit"` + min + `},
    "app": {"role": "app", "instances": "one-or-more", "install": "install.sh", "process": "app", "monit": "svc.monit"}
  }}`
		if err := os.WriteFile(filepath.Join(dir, name, "catalog.json"), []byte(cat), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("dns", `"dns": "lb", "nodes": {"os": [{"id": "debian", "versions": ["12"]}], "monit": "5.2", "mismatch": "problem"},`, "")
	write("ubuntuwarn", `"nodes": {"os": [{"id": "ubuntu", "versions": ["12.04"]}], "mismatch": "warning"},`, "")
	write("ubunturefuse", `"nodes": {"os": [{"id": "ubuntu", "versions": ["12.04"]}], "mismatch": "problem"},`, "")
	write("newmonit", `"nodes": {"monit": "99.1", "mismatch": "problem"},`, "")
	// 100 TB: more than any node here.
	write("bigdisk", "", `, "min": {"cpu": 1, "ram_mb": 64, "disk_mb": 100000000}`)
	return dir
}

// dnsServer answers A queries on addr: the domain and every name under it
// lead to *answer; anything else does not exist.
func dnsServer(t *testing.T, addr, domain string, answer *atomic.Value) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("DNS server on %s: %v", addr, err)
	}
	t.Cleanup(func() { pc.Close() })
	zone := dnsmessage.MustNewName(domain + ".")
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var p dnsmessage.Parser
			h, err := p.Start(buf[:n])
			if err != nil {
				continue
			}
			q, err := p.Question()
			if err != nil {
				continue
			}
			name := strings.ToLower(q.Name.String())
			inZone := name == strings.ToLower(zone.String()) || strings.HasSuffix(name, "."+strings.ToLower(zone.String()))
			rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
			if !inZone {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			b.EnableCompression()
			_ = b.StartQuestions()
			_ = b.Question(q)
			if inZone && q.Type == dnsmessage.TypeA {
				ip := net.ParseIP(answer.Load().(string)).To4()
				_ = b.StartAnswers()
				_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: [4]byte(ip)})
			}
			out, err := b.Finish()
			if err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
}

// precheck runs every pre-check again through the API.
func precheck(t *testing.T, e *harness.Engine) (problems []map[string]string, warnings []string) {
	t.Helper()
	code, body := e.Do("GET", "/deployment-engine/precheck", nil)
	var r struct {
		Problems []map[string]string
		Warnings []string
	}
	if code != 200 || json.Unmarshal(body, &r) != nil {
		t.Fatalf("precheck: %d %s", code, body)
	}
	return r.Problems, r.Warnings
}

func postConfig(t *testing.T, e *harness.Engine, catalog string, props map[string]any) (int, []string, string) {
	t.Helper()
	cfg := config(catalog, map[string][]string{"lb": ips(0), "app": ips(1)})
	for k, v := range props {
		cfg["properties"].(map[string]any)[k] = v
	}
	code, body := e.Do("POST", "/deployment-engine/config", cfg)
	var r struct{ Warnings []string }
	_ = json.Unmarshal(body, &r)
	return code, r.Warnings, string(body)
}

func grep(lines []string, sub string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

// The pre-checks on real nodes: each node's own resolver is asked for the
// domain and a name under it (201 with a warning naming the node where
// they do not lead to haproxy, none where they do); the node's OS and
// monit against what the catalog declares; checkdisk 0 checks no disk.
func TestPrechecks(t *testing.T) {
	e := engine(t, "--no-agents", "--catalog", checkCatalogs(t))
	lb, app := bed.Nodes[0], bed.Nodes[1]

	// No resolver knows the domain (the nodes reach nothing beyond the bridge).
	code, warnings, body := postConfig(t, e, "dns", nil)
	if code != 201 {
		t.Fatalf("config: %d %s", code, body)
	}
	for _, n := range []string{lb.IP, app.IP} {
		if got := grep(warnings, "DNS: on node "+n+", "); len(got) != 2 || !strings.Contains(got[0], "e2e.local does not resolve; point it at lb ("+lb.IP+")") ||
			!strings.Contains(got[1], "*.e2e.local") {
			t.Errorf("DNS warnings for %s: %q", n, got)
		}
	}

	// A DNS server on the bridge that leads the domain to lb, and the
	// nodes' resolvers pointed at it: no DNS warning.
	var answer atomic.Value
	answer.Store(lb.IP)
	dnsServer(t, net.JoinHostPort(bed.Home, "53"), "e2e.local", &answer)
	for _, n := range []*testbed.Node{lb, app} {
		saved, err := n.Exec(context.Background(), "cat /etc/resolv.conf")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.Exec(context.Background(), "printf 'nameserver "+bed.Home+"\\noptions timeout:2 attempts:2\\n' > /etc/resolv.conf"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = n.Exec(context.Background(), "cat > /etc/resolv.conf <<'EOF'\n"+string(saved)+"EOF\n")
		})
	}
	code, warnings, body = postConfig(t, e, "dns", nil)
	if code != 201 || len(grep(warnings, "DNS")) != 0 {
		t.Fatalf("config with DNS leading to lb: %d %s", code, body)
	}
	if problems, warnings := precheck(t, e); len(problems) != 0 || len(grep(warnings, "DNS")) != 0 {
		t.Errorf("precheck with DNS right: %v %q", problems, warnings)
	}
	// The names lead elsewhere: each node says what it got.
	answer.Store(app.IP)
	_, warnings = precheck(t, e)
	if got := grep(warnings, "DNS: on node "+app.IP+", e2e.local resolves to "+app.IP+", not to lb ("+lb.IP+")"); len(got) != 1 {
		t.Errorf("precheck with DNS leading to app: %q", warnings)
	}

	// The node's system against the catalog's: a warning, or a problem.
	code, warnings, body = postConfig(t, e, "ubuntuwarn", nil)
	if code != 201 || len(grep(warnings, "node "+lb.IP+" (lb) runs Debian GNU/Linux 12 (bookworm); the catalog supports ubuntu 12.04")) != 1 {
		t.Errorf("OS warning: %d %s", code, body)
	}
	code, _, body = postConfig(t, e, "ubunturefuse", nil)
	if code != 400 || !strings.Contains(body, "runs Debian GNU/Linux 12") || !strings.Contains(body, app.IP) {
		t.Errorf("OS problem: %d %s", code, body)
	}
	code, _, body = postConfig(t, e, "newmonit", nil)
	if code != 400 || !strings.Contains(body, "the catalog needs monit 99.1 or later") {
		t.Errorf("monit problem: %d %s", code, body)
	}

	// checkdisk: 0 checks no disk, the catalog's minimum included.
	code, _, body = postConfig(t, e, "bigdisk", map[string]any{"checkdisk": 1})
	if code != 400 || !strings.Contains(body, "MB disk, needs 100000000 MB") {
		t.Errorf("disk below the minimum, checkdisk 1: %d %s", code, body)
	}
	if code, _, body = postConfig(t, e, "bigdisk", map[string]any{"checkdisk": 0}); code != 201 {
		t.Errorf("disk below the minimum, checkdisk 0: %d %s", code, body)
	}
}
