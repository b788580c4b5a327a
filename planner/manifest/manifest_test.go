package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func mustDecode(t *testing.T, s string) any {
	t.Helper()
	v, err := decode(File{Name: "test", Data: []byte(s)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestInterpolate(t *testing.T) {
	vars := Vars{
		"password": "s3cret",
		"port":     8080,
		"cert":     map[string]any{"certificate": "CERT", "private_key": "KEY", "ca": "CA"},
		"azs":      []any{"z1", "z2"},
		"a.b":      "dotted",
	}
	cases := []struct {
		name, in, want string
		missing        []string
		err            string
	}{
		{"a whole value keeps its type", `{port: ((port)), azs: ((azs))}`, `{port: 8080, azs: [z1, z2]}`, nil, ""},
		{"a map", `{tls: ((cert))}`, `{tls: {certificate: CERT, private_key: KEY, ca: CA}}`, nil, ""},
		{"a dot goes into the value", `{key: ((cert.private_key))}`, `{key: KEY}`, nil, ""},
		{"a name with a dot first", `{x: ((a.b))}`, `{x: dotted}`, nil, ""},
		{"! is no part of the name", `{p: ((!password))}`, `{p: s3cret}`, nil, ""},
		{"inside a string", `{url: "https://admin:((password))@db:((port))/x"}`, `{url: "https://admin:s3cret@db:8080/x"}`, nil, ""},
		{"keys too", `{((password)): 1}`, `{s3cret: 1}`, nil, ""},
		{"in lists", `[((port)), "p-((port))"]`, `[8080, p-8080]`, nil, ""},
		{"missing ones stay and are named", `{a: ((nope)), b: "x((cert.nope))y", c: ((nope))}`, `{a: ((nope)), b: "x((cert.nope))y", c: ((nope))}`, []string{"cert.nope", "nope"}, ""},
		{"a map inside a string", `{x: "cert: ((cert))"}`, "", nil, `/x: ((cert)) is a map or a list and cannot go inside the string`},
		{"not a reference", `{x: "((not a ref))", y: "(( ))"}`, `{x: "((not a ref))", y: "(( ))"}`, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, missing, err := Interpolate(mustDecode(t, c.in), vars)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := mustDecode(t, c.want); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %#v\nwant %#v", got, want)
			}
			if !reflect.DeepEqual(missing, c.missing) && (len(missing) > 0 || len(c.missing) > 0) {
				t.Fatalf("missing %q, want %q", missing, c.missing)
			}
		})
	}
}

// A variable's value is copied where it goes: the document does not
// share maps with vars.
func TestInterpolateCopies(t *testing.T) {
	vars := Vars{"m": map[string]any{"k": "v"}}
	got, _, err := Interpolate(mustDecode(t, `{a: ((m)), b: ((m))}`), vars)
	if err != nil {
		t.Fatal(err)
	}
	got.(map[string]any)["a"].(map[string]any)["k"] = "changed"
	if b := got.(map[string]any)["b"].(map[string]any)["k"]; b != "v" {
		t.Fatalf("b.k = %v after a.k changed", b)
	}
	if vars["m"].(map[string]any)["k"] != "v" {
		t.Fatal("the variable changed with the document")
	}
}

// TestBuild runs the golden manifest through an ops file and a vars
// file as `manifest interpolate` does, and compares with
// testdata/redis.out.yml (-update rewrites it).
func TestBuild(t *testing.T) {
	read := func(name string) File {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return File{Name: name, Data: b}
	}
	vars := Vars{}
	if err := vars.Load(read("redis.vars.yml")); err != nil {
		t.Fatal(err)
	}
	if err := vars.Set("deployment_name=redis-prod"); err != nil {
		t.Fatal(err)
	}
	doc, missing, err := Build(read("redis.yml"), []File{read("redis.ops.yml")}, vars)
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) != 1 || missing[0] != "redis_password" {
		t.Fatalf("missing %q, want [redis_password]", missing)
	}
	out, err := Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "redis.out.yml")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Fatalf("got\n%s\nwant (UPDATE_GOLDEN=1 rewrites it)\n%s", out, want)
	}
	port, err := Find(doc, "/instance_groups/name=redis/jobs/name=redis-server/properties/port")
	if err != nil || port != 6380 {
		t.Fatalf("Find: %v, %v", port, err)
	}
	if _, err := Find(doc, "/instance_groups/name=nope"); err == nil {
		t.Fatal("Find of a missing group succeeded")
	}
}

// aliasBomb is nine levels of nine aliases each: 9^9 strings once expanded.
func aliasBomb() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [", i, i)
		for j := 0; j < 9; j++ {
			fmt.Fprintf(&b, "*a%d, ", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestBuildErrors(t *testing.T) {
	m := File{Name: "m.yml", Data: []byte("name: x\ninstance_groups: []\n")}
	cases := []struct {
		name string
		m    File
		ops  []File
		err  string
	}{
		{"bad YAML", File{Name: "m.yml", Data: []byte("a: [")}, nil, "m.yml: yaml:"},
		{"two documents", File{Name: "m.yml", Data: []byte("a: 1\n---\nb: 2\n")}, nil, "more than one YAML document"},
		{"an op that fails names its file and number", m, []File{{Name: "o.yml", Data: []byte("- {type: replace, path: /nope/x, value: 1}")}}, `o.yml: operation 1 (replace /nope/x): no key "nope"`},
		{"a bad ops file", m, []File{{Name: "o.yml", Data: []byte("- {type: bogus, path: /a}")}}, `o.yml: ops file item 1`},
		{"too big", File{Name: "big.yml", Data: make([]byte, MaxFile+1)}, nil, "big.yml: 16777217 bytes"},
		{"an alias bomb", File{Name: "bomb.yml", Data: []byte(aliasBomb())}, nil, "bomb.yml: yaml: document contains excessive aliasing"},
	}
	for _, c := range cases {
		if _, _, err := Build(c.m, c.ops, Vars{}); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one with %q", c.name, err, c.err)
		}
	}
	if err := (Vars{}).Set("novalue"); err == nil {
		t.Error("-v without = was accepted")
	}
	if err := (Vars{}).Load(File{Name: "v.yml", Data: []byte("[1, 2]")}); err == nil || !strings.Contains(err.Error(), "YAML map") {
		t.Errorf("a list as vars: %v", err)
	}
}

func FuzzInterpolate(f *testing.F) {
	f.Add("{a: ((x)), b: \"p((y.z))q\", ((x)): 1}")
	f.Add("[((!x)), \"((x))((x))\"]")
	f.Add("{name: n, releases: [{name: r}], instance_groups: [{name: g, instances: 1, azs: [z], networks: [{static_ips: [\"10.0.0.1 - 10.0.0.1\"]}], jobs: [{name: j, release: r}]}]}")
	f.Add("{name: n, release: {name: r}, properties: {a: 1}, jobs: [{name: g, instances: 0, templates: [{name: j}], update: {canaries: 1}}]}")
	f.Fuzz(func(t *testing.T, in string) {
		var v any
		if yaml.Unmarshal([]byte(in), &v) != nil {
			return
		}
		doc, err := decode(File{Name: "f", Data: []byte(in)})
		if err != nil {
			return
		}
		out, _, _ := Interpolate(doc, Vars{"x": "1", "y": map[string]any{"z": []any{1}}})
		_, _, _ = ToConfig(out, Target{}) // never panics on any shape
	})
}
