package patch

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// doc is the document go-patch's documentation demonstrates its
// operations on.
const doc = `
key: 1
key2:
  nested:
    super_nested: 2
  other: 3
array: [4, 5, 6]
items:
- name: item7
- name: item8
- name: item8
`

func decode(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("test YAML: %v\n%s", err, s)
	}
	return Normalize(v)
}

// TestDocumentedExamples holds the operations to go-patch's documented
// examples: each changes doc as its documentation says, or fails where
// it says it errors.
func TestDocumentedExamples(t *testing.T) {
	cases := []struct {
		name, ops string
		want      string // the whole document after; "" when the operation fails
		err       string // a part of the error
	}{
		{"set a key", `[{type: replace, path: /key, value: 10}]`, `
key: 10
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"a missing key is an error", `[{type: replace, path: /key_not_there, value: 10}]`, "", `no key "key_not_there"`},
		{"? creates a key", `[{type: replace, path: "/new_key?", value: 10}]`, `
key: 1
new_key: 10
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"nested keys", `[{type: replace, path: /key2/nested/super_nested, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 10}, other: 3}
array: [4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"? carries over to the right", `[{type: replace, path: "/key2/nested?/another_nested/super_nested", value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2, another_nested: {super_nested: 10}}, other: 3}
array: [4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"an index", `[{type: replace, path: /array/0, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [10, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"- appends", `[{type: replace, path: /array/-, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6, 10]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"? then - creates an array", `[{type: replace, path: "/array2?/-", value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6]
array2: [10]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{":prev", `[{type: replace, path: /array/1:prev, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [10, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{":next", `[{type: replace, path: /array/0:next, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 10, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{":after", `[{type: replace, path: /array/0:after, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 10, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{":before", `[{type: replace, path: /array/0:before, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [10, 4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"a negative index counts from the end", `[{type: replace, path: /array/-1, value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 10]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		// go-patch's examples say this one adds count; go-patch itself, in
		// every version, refuses a missing key without ?, as BOSH users
		// see it do. The engine does what go-patch does.
		{"key=value then a missing key", `[{type: replace, path: /items/name=item7/count, value: 10}]`, "", `no key "count"`},
		{"key=value adds a sibling", `[{type: replace, path: "/items/name=item7/count?", value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6]
items: [{name: item7, count: 10}, {name: item8}, {name: item8}]`, ""},
		{"two matches are an error", `[{type: replace, path: /items/name=item8/count, value: 10}]`, "", "2 items match name=item8"},
		{"key=value? appends an item", `[{type: replace, path: "/items/name=item9?/count", value: 10}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}, {name: item9, count: 10}]`, ""},
		{"remove a key", `[{type: remove, path: /key2/other}]`, `
key: 1
key2: {nested: {super_nested: 2}}
array: [4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
		{"remove an item", `[{type: remove, path: /items/name=item7}]`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6]
items: [{name: item8}, {name: item8}]`, ""},
		{"remove a missing optional key does nothing", `[{type: remove, path: "/nothing?/deeper"}]`, doc, ""},
		{"remove a missing key is an error", `[{type: remove, path: /nothing}]`, "", `no key "nothing"`},
		{"remove an index out of range", `[{type: remove, path: /array/3}]`, "", "outside the array's 3 items"},
		{"replace the root", `[{type: replace, path: "", value: {a: 1}}]`, `a: 1`, ""},
		{"ops apply in order", `
- {type: replace, path: /items/name=item7/name, value: first}
- {type: replace, path: /items/name=first:after, value: {name: second}}
- {type: remove, path: /array}`, `
key: 1
key2: {nested: {super_nested: 2}, other: 3}
items: [{name: first}, {name: second}, {name: item8}, {name: item8}]`, ""},
		{"a key into an array is an error", `[{type: replace, path: /array/x, value: 1}]`, "", "expected a map"},
		{"an escaped key", `[{type: replace, path: "/a~1b~7c~0?", value: 1}]`, `
key: 1
a/b:c~: 1
key2: {nested: {super_nested: 2}, other: 3}
array: [4, 5, 6]
items: [{name: item7}, {name: item8}, {name: item8}]`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, err := ParseOps([]byte(c.ops))
			if err != nil {
				t.Fatalf("ParseOps: %v", err)
			}
			got, err := Apply(decode(t, doc), ops)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want one with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if want := decode(t, c.want); !reflect.DeepEqual(got, want) {
				g, _ := yaml.Marshal(got)
				w, _ := yaml.Marshal(want)
				t.Fatalf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

// TestReadmeExample is go-patch's README example: a manifest's instance
// group scaled, a link's provider given by hand, a group appended.
func TestReadmeExample(t *testing.T) {
	in := decode(t, `
releases:
- {name: capi, version: 0.1}
instance_groups:
- name: cloud_controller
  instances: 0
  jobs:
  - {name: cloud_controller, release: capi}
- {name: uaa, instances: 0}
`)
	ops, err := ParseOps([]byte(`
- type: replace
  path: /instance_groups/name=cloud_controller/instances
  value: 1
- type: replace
  path: /instance_groups/name=cloud_controller/jobs/name=cloud_controller/consumes?/db
  value:
    instances: [{address: some-db.local}]
    properties: {username: user, password: pass}
- type: replace
  path: /instance_groups/name=uaa/instances
  value: 1
- type: replace
  path: /instance_groups/-
  value: {name: uaadb, instances: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Apply(in, ops)
	if err != nil {
		t.Fatal(err)
	}
	want := decode(t, `
releases:
- {name: capi, version: 0.1}
instance_groups:
- name: cloud_controller
  instances: 1
  jobs:
  - name: cloud_controller
    release: capi
    consumes:
      db:
        instances: [{address: some-db.local}]
        properties: {username: user, password: pass}
- {name: uaa, instances: 1}
- {name: uaadb, instances: 2}
`)
	if !reflect.DeepEqual(got, want) {
		g, _ := yaml.Marshal(got)
		t.Fatalf("got\n%s", g)
	}
}

// A value replaced in twice is two copies: changing one leaves the other.
func TestValuesAreCopied(t *testing.T) {
	ops, err := ParseOps([]byte(`
- {type: replace, path: "/a?", value: {x: 1}}
- {type: replace, path: "/b?", value: {x: 1}}
- {type: replace, path: /a/x, value: 2}`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Apply(map[string]any{}, ops)
	if err != nil {
		t.Fatal(err)
	}
	if b := got.(map[string]any)["b"].(map[string]any)["x"]; b != 1 {
		t.Fatalf("b.x = %v after a.x changed", b)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ ops, err string }{
		{`{type: replace}`, "YAML list"},
		{`[{type: replace, path: /a}]`, "replace needs a value"},
		{`[{type: remove, path: /a, value: 1}]`, "remove takes no value"},
		{`[{type: add, path: /a, value: 1}]`, `type "add": replace or remove`},
		{`[{type: replace, path: a, value: 1}]`, "must start with /"},
		{`[{type: replace, path: /a, value: 1, error: x}]`, `unknown field "error"`},
		{`[{type: replace, path: /a/-/b, value: 1}]`, "may only end a path"},
		{`[{type: replace, path: /a/0:before/b, value: 1}]`, "may only end a path"},
		{`[{type: replace, path: /a/0:sideways, value: 1}]`, "unknown modifier :sideways"},
		{`[{type: replace, path: /a:before, value: 1}]`, "follows an index or a key=value only"},
		{`[{type: replace, path: /a~9, value: 1}]`, "unknown escape ~9"},
		{`[{type: remove, path: ""}]`, "root cannot be removed"},
		{`[{type: replace, path: 7, value: 1}]`, "path is missing or not a string"},
		{`- {type: replace, path: /a, value: 1}
- {type: replace, path: /b}`, "ops file item 2"},
	}
	for _, c := range cases {
		if _, err := ParseOps([]byte(c.ops)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want one with %q", c.ops, err, c.err)
		}
	}
}

func FuzzOps(f *testing.F) {
	f.Add([]byte(`[{type: replace, path: "/items/name=x?/count", value: 1}]`), []byte(doc))
	f.Add([]byte(`[{type: remove, path: /array/-1:prev}]`), []byte(doc))
	f.Add([]byte(`[{type: replace, path: "/a~1b/0:after", value: [1]}]`), []byte(`a/b: [0]`))
	f.Fuzz(func(t *testing.T, ops, in []byte) {
		parsed, err := ParseOps(ops)
		if err != nil {
			return
		}
		var v any
		if yaml.Unmarshal(in, &v) != nil {
			return
		}
		_, _ = Apply(Normalize(v), parsed) // never panics
	})
}
