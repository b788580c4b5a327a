package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// A run with a pass, a failed subtest, a skip, a build failure, a package
// that failed outside its tests and one that never ended: the failures'
// output is shown, the counts are of top-level tests, and it failed.
func TestSummary(t *testing.T) {
	in, err := os.ReadFile("testdata/run.json")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c, failed := summary(bytes.NewReader(in), &out, false)
	if c != (counts{passed: 1, failed: 1, skipped: 1}) || !failed {
		t.Errorf("counts %+v failed %v, want 1 passed, 1 failed, 1 skipped and failed", c, failed)
	}
	if *update {
		_ = os.WriteFile("testdata/run.golden", out.Bytes(), 0o644)
	}
	want, _ := os.ReadFile("testdata/run.golden")
	if out.String() != string(want) {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	var quiet bytes.Buffer
	if _, failed := summary(strings.NewReader(`{"Action":"pass","Package":"ex/e","Elapsed":1}`+"\n"), &quiet, true); failed || quiet.Len() != 0 {
		t.Errorf("a quiet passing run: failed %v, printed %q", failed, quiet.String())
	}
}
