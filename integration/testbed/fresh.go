package testbed

import (
	"crypto/ed25519"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// nodefiles are Debian's own /etc/profile (base-files) and
// /etc/bash.bashrc (bash): a node gets these, never the machine's copies,
// which may carry local additions.
//
//go:embed nodefiles
var nodefiles embed.FS

// freshFiles writes what makes the node a machine of its own into its
// upper layer: root's home from /etc/skel, the shell start-up files as
// Debian ships them, its own host key, machine-id, hostname and boot
// services. Nothing of the machine's dotfiles or local shell set-up shows
// through: the directories that hold them are opaque in the overlay.
func (n *Node) freshFiles() error {
	up := filepath.Join(n.dir, "upper")
	pub, err := os.ReadFile(n.bed.KeyPath + ".pub")
	if err != nil {
		return err
	}
	hostKey, hostPub, err := newHostKey(n.Hostname)
	if err != nil {
		return err
	}
	machineID := make([]byte, 16)
	if _, err := rand.Read(machineID); err != nil {
		return err
	}
	profile, _ := nodefiles.ReadFile("nodefiles/profile")
	bashrc, _ := nodefiles.ReadFile("nodefiles/bash.bashrc")
	type file struct {
		mode os.FileMode
		data string
	}
	files := map[string]file{
		"root/.ssh/authorized_keys":        {0o600, string(pub)},
		"etc/profile":                      {0o644, string(profile)},
		"etc/bash.bashrc":                  {0o644, string(bashrc)},
		"etc/environment":                  {0o644, ""},
		"etc/ssh/sshd_config":              {0o644, n.sshdConfig()},
		"etc/ssh/ssh_host_ed25519_key":     {0o600, string(hostKey)},
		"etc/ssh/ssh_host_ed25519_key.pub": {0o644, string(hostPub)},
		"etc/machine-id":                   {0o444, hex.EncodeToString(machineID) + "\n"},
		"etc/hostname":                     {0o644, n.Hostname + "\n"},
		"etc/hosts": {0o644, "127.0.0.1\tlocalhost\n127.0.1.1\t" + n.Hostname + "\n" + n.IP + "\t" + n.Hostname + "\n" +
			"::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"},
		"etc/monit/monitrc": {0o600, "set daemon 2\nset log /var/log/monit.log\nset pidfile /run/monit.pid\n" +
			"set idfile /var/lib/monit/id\nset statefile /var/lib/monit/state\n" +
			"set httpd port 2812 and use address localhost allow localhost\ninclude /etc/monit/conf.d/*\n"},
		// Package scripts must not start services: monit owns them.
		"usr/sbin/policy-rc.d": {0o755, "#!/bin/sh\nexit 101\n"},
		// Its reboot reboots the node, never this machine.
		"usr/sbin/reboot":   {0o755, rebootShim},
		"usr/sbin/shutdown": {0o755, rebootShim},
	}
	if _, err := os.Stat("/var/lib/dbus/machine-id"); err == nil {
		files["var/lib/dbus/machine-id"] = files["etc/machine-id"]
	}
	// Root's home starts from /etc/skel, as useradd would make it.
	err = filepath.WalkDir("/etc/skel", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("/etc/skel", p)
		files[filepath.Join("root", rel)] = file{0o644, string(data)}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testbed: /etc/skel: %w", err)
	}
	// /etc/profile.d keeps only what Debian packages put there.
	for _, p := range packagedProfileD() {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[strings.TrimPrefix(p, "/")] = file{0o644, string(data)}
	}
	for _, d := range []string{"root", "etc/profile.d", "etc/rcS.d", "etc/rc2.d", "etc/monit/conf.d"} {
		if err := opaqueDir(filepath.Join(up, d), 0o755); err != nil {
			return err
		}
	}
	for p, f := range files {
		full := filepath.Join(up, p)
		// A directory in the upper layer hides the mode of the one below:
		// keep the usual 0755 (only /root/.ssh is private).
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(f.data), f.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode); err != nil {
			return err
		}
	}
	for _, d := range []string{"root", "root/.ssh"} {
		if err := os.Chmod(filepath.Join(up, d), 0o700); err != nil {
			return err
		}
	}
	// The machine's other host keys and a machine-wide sshrc do not exist here.
	hostKeys, _ := filepath.Glob("/etc/ssh/ssh_host_*")
	for _, k := range append(hostKeys, "/etc/ssh/sshrc") {
		if strings.HasPrefix(filepath.Base(k), "ssh_host_ed25519_key") {
			continue
		}
		if _, err := os.Lstat(k); err == nil {
			if err := whiteout(filepath.Join(up, k)); err != nil {
				return err
			}
		}
	}
	// Boot services: a fresh node starts sshd and monit at boot; what is
	// enabled on it later (update-rc.d) joins them.
	for _, svc := range []string{"ssh", "monit"} {
		if err := os.Symlink("../init.d/"+svc, filepath.Join(up, "etc/rc2.d", "S01"+svc)); err != nil {
			return err
		}
	}
	for _, d := range []string{"var/lib/monit", "var/log"} {
		if err := os.MkdirAll(filepath.Join(up, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// sshdConfig is the node's own sshd_config: Debian's defaults, the node's
// address and key, and room for many sessions at once (benchmarks open one
// per step).
func (n *Node) sshdConfig() string {
	root, pw := "prohibit-password", "no"
	if n.Password != "" {
		root, pw = "yes", "yes"
	}
	return fmt.Sprintf(`ListenAddress %s
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin %s
PasswordAuthentication %s
KbdInteractiveAuthentication no
UsePAM yes
UseDNS no
PrintMotd no
X11Forwarding no
MaxStartups 200:30:400
MaxSessions 64
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`, n.IP, root, pw)
}

func newHostKey(comment string) (priv, pub []byte, err error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	blk, err := ssh.MarshalPrivateKey(key, "root@"+comment)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(blk), ssh.MarshalAuthorizedKey(signer.PublicKey()), nil
}

// hostState lists the paths where the engine, its agent and BOSH jobs keep
// a node's state. A node never sees the machine's copies of them: tests
// that use this machine itself as a node write there while the bed's
// nodes run, and an owner file seen through the overlay would make a
// fresh node look claimed by another engine.
var hostState = []string{
	"var/lib/deployment-engine",
	"var/vcap",
	"var/lib/monit",
	"etc/monit/conf.d",
	"usr/local/bin/deployment-engine",
	"usr/local/bin/de-agent",
}

// maskLayer makes the lowest-but-one layer of the node's root: a whiteout
// for each of hostState over the machine's /. Being a lower layer, it
// hides them for good, whatever the machine creates there later and
// whatever the node removes (a whiteout the node's own rm would leave in
// the upper layer exists only if the machine had the path at that moment).
// Its directories carry the machine's modes, as the merged root shows
// them.
func (n *Node) maskLayer() error {
	mask := filepath.Join(n.dir, "mask")
	for _, p := range hostState {
		full := filepath.Join(mask, p)
		if _, err := os.Lstat(full); err == nil {
			continue
		}
		for d := filepath.Dir(p); d != "."; d = filepath.Dir(d) {
			defer func() { _ = copyOwnerAndMode(filepath.Join("/", d), filepath.Join(mask, d)) }()
		}
		if err := whiteout(full); err != nil {
			return err
		}
	}
	return nil
}

// copyOwnerAndMode gives dst the owner and mode of src.
func copyOwnerAndMode(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
	}
	return os.Chmod(dst, fi.Mode().Perm())
}

// opaqueDir makes a directory of the upper layer that hides the lower's.
func opaqueDir(p string, mode os.FileMode) error {
	if err := os.MkdirAll(p, mode); err != nil {
		return err
	}
	if err := syscall.Setxattr(p, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		return fmt.Errorf("testbed: make %s opaque: %w", p, err)
	}
	return nil
}

// whiteout hides a lower file: a 0/0 character device in the upper layer.
func whiteout(p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := syscall.Mknod(p, syscall.S_IFCHR, 0); err != nil {
		return fmt.Errorf("testbed: hide %s: %w", p, err)
	}
	return nil
}

// packagedProfileD lists the files of /etc/profile.d that a Debian package
// owns; local additions are left out.
func packagedProfileD() []string {
	all, _ := filepath.Glob("/etc/profile.d/*")
	if len(all) == 0 {
		return nil
	}
	out, _ := exec.Command("dpkg-query", append([]string{"-S"}, all...)...).Output()
	owned := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if _, p, ok := strings.Cut(line, ": "); ok {
			owned[strings.TrimSpace(p)] = true
		}
	}
	var keep []string
	for _, p := range all {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && owned[p] {
			keep = append(keep, p)
		}
	}
	return keep
}
