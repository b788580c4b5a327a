// Package manifest builds a BOSH deployment manifest as the BOSH CLI
// does before a deploy: the file, its ops files applied in order, then
// its ((variables)) filled in.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/deployment-engine/engine/planner/manifest/patch"
)

// MaxFile bounds each file Build reads: they come from outside.
const MaxFile = 16 << 20

// File is one input file with the name its errors use.
type File struct {
	Name string
	Data []byte
}

// Build reads the manifest, applies each ops file in order, and fills in
// the variables. missing names every ((variable)) that vars did not
// hold, sorted; those references stay as written.
func Build(manifest File, ops []File, vars Vars) (doc any, missing []string, err error) {
	doc, err = Patch(manifest, ops)
	if err != nil {
		return nil, nil, err
	}
	return Interpolate(doc, vars)
}

// Patch reads the manifest and applies each ops file in order.
func Patch(manifest File, ops []File) (any, error) {
	doc, err := decode(manifest)
	if err != nil {
		return nil, err
	}
	for _, f := range ops {
		if len(f.Data) > MaxFile {
			return nil, fmt.Errorf("%s: %d bytes; at most %d", f.Name, len(f.Data), MaxFile)
		}
		parsed, err := patch.ParseOps(f.Data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
		if doc, err = patch.Apply(doc, parsed); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name, err)
		}
	}
	return doc, nil
}

// decode reads one YAML document; an empty file is an empty document.
func decode(f File) (any, error) {
	if len(f.Data) > MaxFile {
		return nil, fmt.Errorf("%s: %d bytes; at most %d", f.Name, len(f.Data), MaxFile)
	}
	var doc any
	dec := yaml.NewDecoder(bytes.NewReader(f.Data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", f.Name, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: holds more than one YAML document", f.Name)
	}
	return patch.Normalize(doc), nil
}

// Vars holds the values of variables: `-l FILE` merges a file, `-v
// NAME=VALUE` sets one; a later one wins.
type Vars map[string]any

// Set reads NAME=VALUE; the value is a string, as the BOSH CLI's -v.
func (v Vars) Set(kv string) error {
	name, val, ok := strings.Cut(kv, "=")
	if !ok || name == "" {
		return fmt.Errorf("-v %q: want NAME=VALUE", kv)
	}
	v[name] = val
	return nil
}

// Load merges a YAML map of variables.
func (v Vars) Load(f File) error {
	doc, err := decode(f)
	if err != nil {
		return err
	}
	if doc == nil {
		return nil
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return fmt.Errorf("%s: a variables file is a YAML map of NAME: VALUE", f.Name)
	}
	for k, x := range m {
		v[k] = x
	}
	return nil
}

// ref is a ((name)) or ((!name)) reference; name may go into the value
// with dots (((cert.private_key))).
var ref = regexp.MustCompile(`\(\((!?[-/.:\w]+)\)\)`)

// Interpolate fills in doc's references, keys and values alike. A value
// that is one reference and nothing else takes the variable's value
// with its type (a map stays a map); a reference inside a longer string
// must name a string, number or boolean.
func Interpolate(doc any, vars Vars) (any, []string, error) {
	in := interpolator{vars: vars, missing: map[string]bool{}}
	out, err := in.walk(doc, "")
	missing := make([]string, 0, len(in.missing))
	for n := range in.missing {
		missing = append(missing, n)
	}
	sort.Strings(missing)
	return out, missing, err
}

type interpolator struct {
	vars    Vars
	missing map[string]bool
}

func (in *interpolator) walk(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			nk, err := in.str(k, path+"/"+k)
			if err != nil {
				return nil, err
			}
			key, ok := nk.(string)
			if !ok {
				key = fmt.Sprint(nk)
			}
			if out[key], err = in.walk(x, path+"/"+k); err != nil {
				return nil, err
			}
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			var err error
			if out[i], err = in.walk(x, fmt.Sprintf("%s/%d", path, i)); err != nil {
				return nil, err
			}
		}
		return out, nil
	case string:
		return in.str(t, path)
	}
	return v, nil
}

func (in *interpolator) str(s, path string) (any, error) {
	if !strings.Contains(s, "((") {
		return s, nil
	}
	if m := ref.FindStringSubmatch(s); m != nil && m[0] == s {
		if v, ok := in.lookup(m[1]); ok {
			return v, nil
		}
		return s, nil
	}
	var err error
	out := ref.ReplaceAllStringFunc(s, func(r string) string {
		name := r[2 : len(r)-2]
		v, ok := in.lookup(name)
		if !ok {
			return r
		}
		switch v.(type) {
		case map[string]any, []any:
			if err == nil {
				err = fmt.Errorf("%s: ((%s)) is a map or a list and cannot go inside the string %q", orRoot(path), name, s)
			}
			return r
		case nil:
			return ""
		}
		return fmt.Sprint(v)
	})
	return out, err
}

// lookup finds name (without a leading !) in vars, following dots into
// the value; a name it cannot find is noted as missing.
func (in *interpolator) lookup(name string) (any, bool) {
	name = strings.TrimPrefix(name, "!")
	if v, ok := in.vars[name]; ok {
		return patch.Clone(v), true
	}
	parts := strings.Split(name, ".")
	v, ok := in.vars[parts[0]]
	for _, p := range parts[1:] {
		if !ok {
			break
		}
		m, isMap := v.(map[string]any)
		if !isMap {
			ok = false
			break
		}
		v, ok = m[p]
	}
	if !ok {
		in.missing[name] = true
	}
	return patch.Clone(v), ok
}

func orRoot(path string) string {
	if path == "" {
		return "the document"
	}
	return path
}

// Marshal prints doc as YAML with two-space indents, keys sorted.
func Marshal(doc any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Find is the value at a pointer (`bosh int --path`).
func Find(doc any, path string) (any, error) {
	p, err := patch.ParsePointer(path)
	if err != nil {
		return nil, err
	}
	return patch.Find(doc, p)
}
