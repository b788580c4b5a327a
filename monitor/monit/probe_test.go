package monit

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// PidFiles takes a pidfile only under a process check's name, as
// ProbeScript's awk; ProbeLocal names the live processes and the notes,
// not a dead pid, a zombie-free empty file, nor a hidden file.
func TestProbeLocal(t *testing.T) {
	verbose := "Runtime constants:\n Pid file           = /run/monit.pid\n\nSystem Name           = node\n\nProcess Name          = web\n Pid file             = WEB\n Status               = ok\n\n" +
		"Process Name          = db\n Pid file             = DB\n\nProcess Name          = cache\n Pid file             = EMPTY\n\nFile Name = conf\n Path = /etc/x\n"
	dir := t.TempDir()
	for name, body := range map[string]string{"WEB": strconv.Itoa(os.Getpid()) + "\n", "DB": "999999999\n", "EMPTY": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := PidFiles(verbose)
	want := []PidFile{{"web", "WEB"}, {"db", "DB"}, {"cache", "EMPTY"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("PidFiles = %v, want %v", got, want)
	}
	for i := range got {
		got[i].Path = filepath.Join(dir, got[i].Path)
	}
	marks := filepath.Join(dir, "marks")
	if err := os.Mkdir(marks, 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(marks, "web"), []byte("'web' failed to stop\nexit 2\n"), 0o644)
	_ = os.WriteFile(filepath.Join(marks, ".tmp"), []byte("half written"), 0o644)
	wantOut := "alive web " + strconv.Itoa(os.Getpid()) + "\nstopfailed web 'web' failed to stop exit 2 \n"
	if out := ProbeLocal(got, marks); out != wantOut {
		t.Errorf("ProbeLocal:\n%q\nwant\n%q", out, wantOut)
	}
}
