package engine

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// answeringNode is an SSH server on loopback that stands in for a node
// whose every command fails: it answers the installer's probe (a script
// that echoes cpu= and disk=) with a node's hardware and any other command
// with one line of output and exit status 1, so a deploy starts and its
// first step fails each attempt. Nothing runs on this machine. It returns
// the port.
func answeringNode(t *testing.T) string {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PasswordCallback:  func(ssh.ConnMetadata, []byte) (*ssh.Permissions, error) { return nil, nil },
		PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil },
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); serveNode(c, cfg) }()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func serveNode(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, in, err := nc.Accept()
		if err != nil {
			return
		}
		go serveSession(ch, in)
	}
}

func serveSession(ch ssh.Channel, in <-chan *ssh.Request) {
	defer ch.Close()
	for req := range in {
		if req.Type != "exec" {
			_ = req.Reply(req.Type == "env", nil)
			continue
		}
		var cmd struct{ Command string }
		_ = ssh.Unmarshal(req.Payload, &cmd)
		_ = req.Reply(true, nil)
		script, _ := io.ReadAll(io.LimitReader(ch, 1<<20))
		status := uint32(1)
		if all := cmd.Command + string(script); strings.Contains(all, `echo "cpu=`) && strings.Contains(all, `echo "disk=`) {
			_, _ = io.WriteString(ch, "cpu=2\nram=4049952\ndisk=54988800\nowner=\nmonit=5.33.0\n")
			status = 0
		} else {
			_, _ = io.WriteString(ch, "this node runs nothing\n")
		}
		_, _ = ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
		return
	}
}
