package monit

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// PidFile is a process check of monit's and the pidfile it reads.
type PidFile struct{ Name, Path string }

// PidFiles reads the process checks and their pidfiles from monit's
// verbose check of its config (monit -v -t), as ProbeScript does.
func PidFiles(verbose string) []PidFile {
	var out []PidFile
	name := ""
	for _, line := range strings.Split(verbose, "\n") {
		f := strings.Fields(line) // a line either pattern matches has 3 or more
		switch {
		case processName.MatchString(line):
			name = f[len(f)-1]
		case pidFile.MatchString(line) && name != "":
			out = append(out, PidFile{Name: name, Path: f[len(f)-1]})
		}
	}
	return out
}

// The lines of monit -v -t that ProbeScript's awk reads.
var (
	processName = regexp.MustCompile(`^Process Name *= `)
	pidFile     = regexp.MustCompile(`^ *Pid file *= `)
)

// ProbeLocal does on the node it runs on what ProbeScript does there, in
// the agent's own process: a line "alive NAME PID" for each pidfile that
// names a live process (not a zombie), and "stopfailed NAME WORDS" for
// each note in markDir. ParseProbe reads it. The agent asks it whenever a
// process of its node is down (a restart, a stop), and the script cost a
// dozen processes each time.
func ProbeLocal(pidfiles []PidFile, markDir string) string {
	var b strings.Builder
	for _, p := range pidfiles {
		pid := pidIn(p.Path)
		if pid == "" {
			continue
		}
		if st := procState(pid); st != "" && st != "Z" && st != "X" {
			fmt.Fprintf(&b, "alive %s %s\n", p.Name, pid)
		}
	}
	entries, _ := os.ReadDir(markDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") { // the script's glob leaves them
			continue
		}
		path := filepath.Join(markDir, e.Name())
		if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
			continue
		}
		note := make([]byte, 400)
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		n, _ := f.Read(note)
		f.Close()
		fmt.Fprintf(&b, "stopfailed %s %s\n", e.Name(), strings.ReplaceAll(string(note[:n]), "\n", " "))
	}
	return b.String()
}

// pidIn is the pid a pidfile holds, as ProbeScript reads it: its digits,
// the first ten.
func pidIn(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var d []byte
	for _, c := range raw {
		if c >= '0' && c <= '9' && len(d) < 10 {
			d = append(d, c)
		}
	}
	if n, err := strconv.Atoi(string(d)); err != nil || n <= 0 {
		return ""
	}
	return string(d)
}

// procState is the state letter of /proc/PID/stat, "" when it is gone.
func procState(pid string) string {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return ""
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || len(b) < i+3 {
		return ""
	}
	return string(b[i+2])
}
