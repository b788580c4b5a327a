package api

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// stubReleases is a release store with nothing in it.
type stubReleases struct{ dir string }

func (s stubReleases) Upload(context.Context, io.Reader) (int, any) {
	return 400, contract.ErrorBody{Error: "not a release: no release.MF"}
}
func (s stubReleases) List(context.Context) (int, any) { return 200, []string{} }
func (s stubReleases) PackageFile(_ context.Context, rel, version, pkg string) (string, error) {
	p := filepath.Join(s.dir, rel, version, "packages", pkg+".tgz")
	_, err := os.Stat(p)
	return p, err
}

// smallBuffers makes every accepted connection's send buffer small, so
// that a client that does not read stalls its answer after a few KiB
// rather than after the megabytes the kernel would otherwise queue.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return c, err
}

// slowReader dials from local with a small receive window and asks for
// path, then reads only the status line of the answer.
func slowReader(t *testing.T, addr, local, path, auth string) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)},
		Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		},
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: engine\r\nAuthorization: %s\r\n\r\n", path, auth)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReaderSize(c, 16).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c, strings.TrimSpace(line)
}

// 130 clients without a token, each with a bogus bearer of its own, read
// a large mirror file and then stop reading: they hold what they can of
// the anonymous budget. The API keeps answering a token at once; when
// they all come from one address, a node at another still fetches the
// mirror's index.
func TestAnonymousSlowReadersDoNotStarveTheAPI(t *testing.T) {
	for _, tt := range []struct {
		name  string
		addrs int // the slow readers' addresses, 127.0.1.1 on
		held  int // the answers they hold at most
	}{
		{"one address", 1, 16},
		{"13 addresses", 13, 64},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, admin := mirrorServer(t)
			held := 0
			for i := range 130 {
				local := fmt.Sprintf("127.0.1.%d", 1+i%tt.addrs)
				_, status := slowReader(t, addr, local, "/mirror/big.deb", fmt.Sprintf("Bearer bogus-%d", i))
				if strings.Contains(status, " 200 ") {
					held++
				}
			}
			if held != tt.held {
				t.Errorf("%d of 130 slow readers hold an answer, want %d", held, tt.held)
			}

			client := &http.Client{Timeout: time.Second}
			start := time.Now()
			req, _ := http.NewRequest("GET", "http://"+addr+"/deployment-engine/releases", nil)
			req.Header.Set("Authorization", "Bearer "+admin)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("an authenticated request while anonymous clients hold the mirror: %v", err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("an authenticated request while anonymous clients hold the mirror: %d after %v", resp.StatusCode, time.Since(start))
			}

			if tt.addrs == 1 {
				c, status := slowReader(t, addr, "127.0.0.2", "/mirror/Packages", "")
				_ = c.Close()
				if !strings.Contains(status, " 200 ") {
					t.Fatalf("a node at another address got %q for the mirror's index", status)
				}
			}
		})
	}
}

// mirrorServer serves the API on loopback as the engine does, with an
// 8 MiB file in its mirror, and answers its address and admin token.
func mirrorServer(t *testing.T) (string, string) {
	mirror := t.TempDir()
	if err := os.WriteFile(filepath.Join(mirror, "big.deb"), make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mirror, "Packages"), []byte("Package: big\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const admin = "admin-token-0123456789"
	o := Options{Token: admin, MirrorDir: mirror, Releases: stubReleases{t.TempDir()}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(checked(t, h), o, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(smallBuffers{ln}) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), admin
}
