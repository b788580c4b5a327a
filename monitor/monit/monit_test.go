package monit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		file string
		want []Service
	}{
		{"status-5.33.xml", []Service{
			{"sleeper", "Process", "OK", true},
			{"ghost", "Process", "Not monitored", false},
			{"hosts", "File", "OK", true},
			{"vm", "System", "OK", true},
		}},
		{"summary-5.33-batch.txt", []Service{
			{"vm", "System", "OK", true},
			{"sleeper", "Process", "OK", true},
			{"ghost", "Process", "Not monitored", false},
			{"hosts", "File", "OK", true},
		}},
		{"summary-5.33-table.txt", []Service{
			{"vm", "System", "OK", true},
			{"sleeper", "Process", "OK", true},
			{"ghost", "Process", "Not monitored", false},
			{"hosts", "File", "OK", true},
		}},
		{"summary-5.2.txt", []Service{
			{"nats", "Process", "running", true},
			{"health_manager_next", "Process", "not monitored", false},
			{"uaa", "Process", "Does not exist", false},
			{"hosts", "File", "accessible", true},
			{"localhost", "System", "running", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []Service
			if strings.HasSuffix(tt.file, ".xml") {
				got, err = ParseXML(strings.NewReader(string(b)))
			} else {
				got, err = ParseSummary(b)
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d services %+v, want %d", len(got), got, len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("service %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestDaemonErrors(t *testing.T) {
	for _, f := range []string{"error-5.2.txt", "error-5.33.txt"} {
		b, _ := os.ReadFile(filepath.Join("testdata", f))
		_, err := ParseSummary(b)
		var de *DaemonError
		if !errors.As(err, &de) || de.Hint() == "" {
			t.Errorf("%s: got %v, want a DaemonError with a hint", f, err)
		}
	}
	extra := []string{
		"Cannot create socket to [localhost]:2812 -- Connection refused\n",
		"Cannot connect to [127.0.0.1]:42921 -- Connection refused\n",
	}
	for _, s := range extra {
		var de *DaemonError
		if _, err := ParseSummary([]byte(s)); !errors.As(err, &de) {
			t.Errorf("%q: got %v, want a DaemonError", s, err)
		}
	}
}

func TestRejectsWhatIsNotMonit(t *testing.T) {
	for _, s := range []string{"", "hello world\n", "Monit 5.33.0 uptime: 1m\n│ a │ b │\n", "<html>", "Monit 5.33.0\n\x00\x01 garbage\n"} {
		if got, err := ParseSummary([]byte(s)); err == nil {
			t.Errorf("ParseSummary(%q) = %+v, want an error", s, got)
		}
	}
	for _, s := range []string{"", "<monit><service><name></name></service></monit>", "<?xml version=\"1.0\" encoding=\"koi8-r\"?><monit/>"} {
		if got, err := ParseXML(strings.NewReader(s)); err == nil {
			t.Errorf("ParseXML(%q) = %+v, want an error", s, got)
		}
	}
}

// FuzzSummary holds that the summary parser never panics and that what it
// accepts is well formed.
func FuzzSummary(f *testing.F) {
	for _, n := range []string{"summary-5.2.txt", "summary-5.33-batch.txt", "summary-5.33-table.txt", "error-5.2.txt"} {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		svcs, err := ParseSummary(b)
		if err != nil {
			return
		}
		for _, s := range svcs {
			if s.Name == "" || strings.ContainsAny(s.Name, "\n") {
				t.Fatalf("accepted a service with a bad name: %+v", s)
			}
		}
	})
}

// FuzzXML holds the same for the XML parser.
func FuzzXML(f *testing.F) {
	b, _ := os.ReadFile(filepath.Join("testdata", "status-5.33.xml"))
	f.Add(b)
	f.Add([]byte(`<monit><service type="3"><name>x</name><status>0</status><monitor>1</monitor><pid>1</pid></service></monit>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		svcs, err := ParseXML(strings.NewReader(string(b)))
		if err != nil {
			return
		}
		for _, s := range svcs {
			if s.Name == "" || (s.Running && s.Status != "OK") {
				t.Fatalf("accepted an inconsistent service: %+v", s)
			}
		}
	})
}
