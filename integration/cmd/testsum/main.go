// Command testsum reads `go test -json` and prints what a person running
// the suite needs: one line per package with its time and counts, the
// output of each test that failed (and of a package that failed outside
// its tests: a build error, a panic, TestMain), and with -total a closing
// line "tests: N passed, N failed, N skipped" over every file given. Lines
// that are not test2json events are printed as they are. It exits 1 when
// anything failed.
//
//	go test -json ./... | testsum
//	testsum -total units.json e2e.json
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string // build-output, build-fail
}

// counts are top-level tests by outcome (subtests are part of their test).
type counts struct{ passed, failed, skipped int }

func (c *counts) add(o counts) {
	c.passed += o.passed
	c.failed += o.failed
	c.skipped += o.skipped
}

// pkg is what is kept of one package until it ends.
type pkg struct {
	counts
	out   []string            // the package's own output, outside tests
	tests map[string][]string // each running test's output
}

// summary reads events from r, printing to w as packages end; it returns
// the counts and whether any package or build failed.
func summary(r io.Reader, w io.Writer, quiet bool) (counts, bool) {
	var total counts
	failed := false
	pkgs := map[string]*pkg{}
	get := func(name string) *pkg {
		p := pkgs[name]
		if p == nil {
			p = &pkg{tests: map[string][]string{}}
			pkgs[name] = p
		}
		return p
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		var ev event
		if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil || ev.Action == "" {
			if !quiet {
				fmt.Fprintln(w, line)
			}
			continue
		}
		switch ev.Action {
		case "build-output":
			get(ev.ImportPath).out = append(get(ev.ImportPath).out, ev.Output)
		case "build-fail":
			failed = true
			if !quiet {
				fmt.Fprintf(w, "FAIL\t%s [build failed]\n%s", ev.ImportPath, strings.Join(get(ev.ImportPath).out, ""))
			}
		case "output":
			p := get(ev.Package)
			if ev.Test == "" {
				p.out = append(p.out, ev.Output)
			} else {
				top, _, _ := strings.Cut(ev.Test, "/")
				p.tests[top] = append(p.tests[top], ev.Output)
			}
		case "pass", "fail", "skip":
			p := get(ev.Package)
			if ev.Test != "" {
				if strings.Contains(ev.Test, "/") {
					continue
				}
				switch ev.Action {
				case "pass":
					p.passed++
				case "skip":
					p.skipped++
				case "fail":
					p.failed++
					if !quiet {
						fmt.Fprint(w, strings.Join(p.tests[ev.Test], ""))
					}
				}
				delete(p.tests, ev.Test)
				continue
			}
			total.add(p.counts)
			if ev.Action == "fail" {
				failed = true
			}
			if !quiet {
				printPackage(w, ev, p)
			}
			delete(pkgs, ev.Package)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(w, "testsum: %v\n", err)
		failed = true
	}
	// A package that never ended (the run was killed) failed.
	names := make([]string, 0, len(pkgs))
	for name, p := range pkgs {
		if len(p.tests) > 0 || p.passed+p.failed+p.skipped > 0 {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		p := pkgs[name]
		failed = true
		total.add(p.counts)
		if !quiet {
			fmt.Fprintf(w, "FAIL\t%s [did not finish]\n", name)
			for test, out := range p.tests {
				fmt.Fprintf(w, "--- running when it stopped: %s\n%s", test, strings.Join(out, ""))
			}
		}
	}
	return total, failed
}

// printPackage writes a package's line, with its own output when it
// failed outside its tests.
func printPackage(w io.Writer, ev event, p *pkg) {
	state := map[string]string{"pass": "ok", "fail": "FAIL", "skip": "?"}[ev.Action]
	n := fmt.Sprintf("%d passed", p.passed)
	if p.failed > 0 {
		n += fmt.Sprintf(", %d failed", p.failed)
	}
	if p.skipped > 0 {
		n += fmt.Sprintf(", %d skipped", p.skipped)
	}
	if p.passed+p.failed+p.skipped == 0 {
		n = "no tests"
	}
	fmt.Fprintf(w, "%-4s\t%-60s\t%7.1fs\t%s\n", state, ev.Package, ev.Elapsed, n)
	if ev.Action == "fail" && p.failed == 0 {
		fmt.Fprint(w, strings.Join(p.out, ""))
	}
}

func main() {
	total := flag.Bool("total", false, "print only the closing line over every file given")
	flag.Parse()
	var all counts
	failed := false
	read := func(r io.Reader) {
		c, f := summary(r, os.Stdout, *total)
		all.add(c)
		failed = failed || f
	}
	if flag.NArg() == 0 {
		read(os.Stdin)
	}
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "testsum: %v\n", err)
			failed = true
			continue
		}
		read(f)
		f.Close()
	}
	if *total {
		fmt.Printf("tests: %d passed, %d failed, %d skipped\n", all.passed, all.failed, all.skipped)
	}
	if failed {
		os.Exit(1)
	}
}
