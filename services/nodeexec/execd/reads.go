package execd

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/deployment-engine/engine/services/nodeexec"
	"github.com/deployment-engine/engine/services/nodefs"
)

// read answers a nodeexec read in the agent's own process: what the
// engine's script of that name prints when a shell runs it on the node
// (the installer's tests hold the two to the same output).
func (e *Executor) read(what string) ([]byte, error) {
	switch what {
	case nodeexec.ReadMarkers:
		return e.readMarkers(), nil
	case nodeexec.ReadProbe:
		return e.readProbe(), nil
	}
	return nil, fmt.Errorf("no read named %q", what)
}

// readMarkers is nodefs.MarkersScript: whether monit is on PATH, then each
// step marker with its hash, in the order of the shell's glob.
func (e *Executor) readMarkers() []byte {
	var b bytes.Buffer
	if e.onPath("monit") != "" {
		b.WriteString("monit yes\n")
	} else {
		b.WriteString("monit no\n")
	}
	ents, _ := os.ReadDir(e.root + nodefs.Applied)
	for _, d := range ents {
		name := d.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		if fi, err := os.Stat(e.root + nodefs.Applied + "/" + name); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		fmt.Fprintf(&b, "marker %s %s\n", name, firstField(firstLine(e.root+nodefs.Applied+"/"+name)))
	}
	return b.Bytes()
}

// onPath is where the login environment's PATH finds an executable name,
// "" when it does not.
func (e *Executor) onPath(name string) string {
	path := "/usr/bin:/bin"
	for _, kv := range e.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(e.root + p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// readProbe is the installer's probe script with nothing to resolve,
// fetch, unclaim or leave: a deploy's check of the node.
func (e *Executor) readProbe() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "cpu=%d\n", allowedCPUs())
	fmt.Fprintf(&b, "ram=%s\n", procField("/proc/meminfo", "MemTotal:"))
	disk := ""
	var st syscall.Statfs_t
	if err := syscall.Statfs(e.root+"/", &st); err == nil {
		disk = strconv.FormatUint(st.Blocks*uint64(st.Frsize)/1024, 10)
	}
	fmt.Fprintf(&b, "disk=%s\n", disk)
	fmt.Fprintf(&b, "owner=%s\n", firstLine(e.root+nodefs.Owner))
	if rel, err := os.ReadFile(e.root + "/etc/os-release"); err == nil {
		v := osRelease(rel)
		fmt.Fprintf(&b, "os_id=%s\nos_version=%s\nos_name=%s\n", v["ID"], v["VERSION_ID"], v["PRETTY_NAME"])
	}
	fmt.Fprintf(&b, "monit=%s\n", e.monitVersion())
	return b.Bytes()
}

// allowedCPUs counts the CPUs this process may run on, as the script
// reads Cpus_allowed_list (runtime.NumCPU would give the same; the
// script's reading is the contract).
func allowedCPUs() int {
	n := 0
	for _, r := range strings.Split(procField("/proc/self/status", "Cpus_allowed_list:"), ",") {
		lo, hi, ok := strings.Cut(r, "-")
		a, err1 := strconv.Atoi(lo)
		switch {
		case r == "" || err1 != nil:
		case !ok:
			n++
		default:
			if b, err := strconv.Atoi(hi); err == nil {
				n += b - a + 1
			}
		}
	}
	if n <= 0 {
		n = 1
	}
	return n
}

// procField is the first word after key in a /proc file of "key value"
// lines.
func procField(p, key string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 2 && fs[0] == key {
			return fs[1]
		}
	}
	return ""
}

// osRelease reads os-release's KEY=value lines as a shell sources them:
// values in double quotes (backslash escapes), in single quotes, or bare.
func osRelease(b []byte) map[string]string {
	v := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch {
		case len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"':
			val = val[1 : len(val)-1]
			var u strings.Builder
			for i := 0; i < len(val); i++ {
				if val[i] == '\\' && i+1 < len(val) && strings.IndexByte("\"\\$`", val[i+1]) >= 0 {
					i++
				}
				u.WriteByte(val[i])
			}
			val = u.String()
		case len(val) >= 2 && val[0] == '\'' && val[len(val)-1] == '\'':
			val = val[1 : len(val)-1]
		}
		v[k] = val
	}
	return v
}

var (
	monitVersionRe = regexp.MustCompile(`[Vv]ersion ([0-9][0-9.]*)`)
	leadingVersion = regexp.MustCompile(`^[0-9][0-9.]*`)
)

// monitVersion is the version the monit daemon gives in its HTTP
// answer's Server header, or its client's -V where the daemon does not
// answer; "" without monit.
func (e *Executor) monitVersion() string {
	bin := e.onPath("monit")
	if bin == "" {
		return ""
	}
	if c, err := net.DialTimeout("tcp", strings.Replace(nodefs.MonitHTTP, "/", ":", 1), 2*time.Second); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte("GET /_ping HTTP/1.0\r\n\r\n"))
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 0 {
				break
			}
			if f[0] == "Server:" {
				if len(f) >= 3 && f[1] == "monit" {
					if m := leadingVersion.FindString(f[2]); m != "" {
						c.Close()
						return m
					}
				}
				break
			}
		}
		c.Close()
	}
	cmd := exec.Command(bin, "-V")
	if len(e.bash) > 0 { // the node is not this process's root
		cmd = exec.Command(e.bash[0], append(e.bash[1:len(e.bash):len(e.bash)], "-c", "monit -V")...)
	}
	cmd.Env = e.env
	out, _ := cmd.Output()
	if m := monitVersionRe.FindSubmatch(out); m != nil {
		return string(m[1])
	}
	return ""
}
