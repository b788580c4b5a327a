package patch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Op is one operation of an ops file.
type Op struct {
	Type  string // "replace" or "remove"
	Path  Pointer
	Value any // replace's new value
}

func (o Op) String() string { return o.Type + " " + o.Path.String() }

// MaxOpsFile bounds an ops file read by ParseOps.
const MaxOpsFile = 8 << 20

// ParseOps reads an ops file: a YAML list of {type, path, value}. Every
// item is checked before any is applied, and an error names the item.
func ParseOps(data []byte) ([]Op, error) {
	if len(data) > MaxOpsFile {
		return nil, fmt.Errorf("ops file is %d bytes; at most %d", len(data), MaxOpsFile)
	}
	var items []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&items); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("ops file: %w (it is a YAML list of {type, path, value})", err)
	}
	ops := make([]Op, 0, len(items))
	for i, it := range items {
		op, err := parseOp(it)
		if err != nil {
			return nil, fmt.Errorf("ops file item %d: %w", i+1, err)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func parseOp(it map[string]any) (Op, error) {
	var op Op
	for k := range it {
		if k != "type" && k != "path" && k != "value" {
			return op, fmt.Errorf("unknown field %q (type, path, value)", k)
		}
	}
	typ, _ := it["type"].(string)
	path, ok := it["path"].(string)
	if !ok {
		return op, errors.New("path is missing or not a string")
	}
	p, err := ParsePointer(path)
	if err != nil {
		return op, err
	}
	op = Op{Type: typ, Path: p, Value: Normalize(it["value"])}
	_, hasValue := it["value"]
	switch typ {
	case "replace":
		if !hasValue {
			return op, fmt.Errorf("%s: replace needs a value", op)
		}
	case "remove":
		if hasValue {
			return op, fmt.Errorf("%s: remove takes no value", op)
		}
		if len(p.tokens) == 0 {
			return op, fmt.Errorf("%s: the document's root cannot be removed", op)
		}
	default:
		return op, fmt.Errorf("type %q: replace or remove", typ)
	}
	return op, nil
}

// Apply applies ops to doc in order and returns the new document. The
// first operation that fails stops it, named with its number.
func Apply(doc any, ops []Op) (any, error) {
	for i, op := range ops {
		var err error
		switch op.Type {
		case "replace":
			doc, err = replace(doc, op.Path.tokens, Clone(op.Value))
		case "remove":
			doc, err = remove(doc, op.Path.tokens)
		default:
			err = fmt.Errorf("type %q: replace or remove", op.Type)
		}
		if err != nil {
			return doc, fmt.Errorf("operation %d (%s): %w", i+1, op, err)
		}
	}
	return doc, nil
}

func replace(node any, toks []token, val any) (any, error) {
	if len(toks) == 0 {
		return val, nil
	}
	t, rest := toks[0], toks[1:]
	switch t.kind {
	case kindKey:
		m, ok := node.(map[string]any)
		if !ok {
			if node != nil || !t.optional {
				return node, fmt.Errorf("expected a map for key %q, found %s", t.key, Kind(node))
			}
			m = map[string]any{}
		}
		child, exists := m[t.key]
		if !exists && !t.optional {
			return node, fmt.Errorf("no key %q (keys: %s; add ? to create it)", t.key, keys(m))
		}
		nv, err := replace(child, rest, val)
		if err != nil {
			return m, err
		}
		m[t.key] = nv
		return m, nil
	case kindAfterLast:
		arr, err := list(node, t, "-")
		if err != nil {
			return node, err
		}
		return append(arr, val), nil
	}
	arr, err := list(node, t, stepName(t))
	if err != nil {
		return node, err
	}
	i, found, err := locate(arr, t)
	if err != nil {
		return arr, err
	}
	if !found { // an optional key=value with no match: a new item
		if len(rest) == 0 {
			return append(arr, val), nil
		}
		nv, err := replace(map[string]any{t.key: t.value}, rest, val)
		if err != nil {
			return arr, err
		}
		return append(arr, nv), nil
	}
	switch t.insert {
	case "before":
		return insertAt(arr, i, val), nil
	case "after":
		return insertAt(arr, i+1, val), nil
	}
	nv, err := replace(arr[i], rest, val)
	if err != nil {
		return arr, err
	}
	arr[i] = nv
	return arr, nil
}

func remove(node any, toks []token) (any, error) {
	t, rest := toks[0], toks[1:]
	switch t.kind {
	case kindKey:
		m, ok := node.(map[string]any)
		if !ok {
			if node == nil && t.optional {
				return node, nil
			}
			return node, fmt.Errorf("expected a map for key %q, found %s", t.key, Kind(node))
		}
		child, exists := m[t.key]
		if !exists {
			if t.optional {
				return m, nil
			}
			return m, fmt.Errorf("no key %q (keys: %s)", t.key, keys(m))
		}
		if len(rest) == 0 {
			delete(m, t.key)
			return m, nil
		}
		nv, err := remove(child, rest)
		if err != nil {
			return m, err
		}
		m[t.key] = nv
		return m, nil
	case kindAfterLast:
		return node, errors.New("- names no item to remove")
	}
	if t.insert != "" {
		return node, fmt.Errorf(":%s names no item to remove", t.insert)
	}
	if node == nil && t.optional {
		return node, nil
	}
	arr, err := list(node, t, stepName(t))
	if err != nil {
		return node, err
	}
	i, found, err := locate(arr, t)
	if err != nil || !found {
		return arr, err
	}
	if len(rest) == 0 {
		return append(arr[:i:i], arr[i+1:]...), nil
	}
	nv, err := remove(arr[i], rest)
	if err != nil {
		return arr, err
	}
	arr[i] = nv
	return arr, nil
}

// list is node as an array; a missing one under an optional step is
// a new, empty array.
func list(node any, t token, step string) ([]any, error) {
	if arr, ok := node.([]any); ok {
		return arr, nil
	}
	if node == nil && t.optional {
		return nil, nil
	}
	return nil, fmt.Errorf("expected an array for %s, found %s", step, Kind(node))
}

// locate finds t's item in arr: found is false only for an optional
// key=value that matches nothing.
func locate(arr []any, t token) (int, bool, error) {
	var i int
	switch t.kind {
	case kindIndex:
		i = t.index
		if i < 0 {
			i += len(arr)
		}
	case kindMatch:
		var hits []int
		for j, it := range arr {
			if m, ok := it.(map[string]any); ok && scalarEqual(m[t.key], t.value) {
				hits = append(hits, j)
			}
		}
		switch {
		case len(hits) > 1:
			return 0, false, fmt.Errorf("%d items match %s=%s (items %s); a path names one", len(hits), t.key, t.value, ints(hits))
		case len(hits) == 0 && t.optional:
			return 0, false, nil
		case len(hits) == 0:
			return 0, false, fmt.Errorf("no item matches %s=%s among %d (add ? to append one)", t.key, t.value, len(arr))
		}
		i = hits[0]
	}
	i += t.shift
	if i < 0 || i >= len(arr) {
		return 0, false, fmt.Errorf("%s: index %d is outside the array's %d items", stepName(t), i, len(arr))
	}
	return i, true, nil
}

func insertAt(arr []any, i int, v any) []any {
	arr = append(arr, nil)
	copy(arr[i+1:], arr[i:])
	arr[i] = v
	return arr
}

func stepName(t token) string {
	switch t.kind {
	case kindMatch:
		return t.key + "=" + t.value
	case kindIndex:
		return fmt.Sprint(t.index)
	case kindAfterLast:
		return "-"
	}
	return t.key
}

func scalarEqual(v any, s string) bool {
	switch v.(type) {
	case map[string]any, []any, nil:
		return false
	}
	return fmt.Sprint(v) == s
}

// Kind names what v is, never its value: a value may be a secret.
func Kind(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case map[string]any:
		return "a map"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	}
	return fmt.Sprintf("a %T", v)
}

func keys(m map[string]any) string {
	if len(m) == 0 {
		return "none"
	}
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	if len(ks) > 10 {
		ks = append(ks[:10], fmt.Sprintf("and %d more", len(ks)-10))
	}
	return strings.Join(ks, ", ")
}

func ints(is []int) string {
	s := make([]string, len(is))
	for i, n := range is {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// Normalize turns what yaml.v3 decodes into the shapes patch walks:
// map[any]any (a mapping with a key that is not a string) becomes
// map[string]any, with the keys as YAML prints them.
func Normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = Normalize(x)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = Normalize(x)
		}
		return m
	case []any:
		for i, x := range t {
			t[i] = Normalize(x)
		}
		return t
	}
	return v
}

// Clone is a deep copy of a document.
func Clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = Clone(x)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, x := range t {
			a[i] = Clone(x)
		}
		return a
	}
	return v
}

// Find is the value p names in doc. A missing optional step is nil.
func Find(doc any, p Pointer) (any, error) {
	node := doc
	for _, t := range p.tokens {
		switch t.kind {
		case kindKey:
			m, ok := node.(map[string]any)
			if !ok {
				if node == nil && t.optional {
					return nil, nil
				}
				return nil, fmt.Errorf("%s: expected a map for key %q, found %s", p, t.key, Kind(node))
			}
			child, exists := m[t.key]
			if !exists && !t.optional {
				return nil, fmt.Errorf("%s: no key %q (keys: %s)", p, t.key, keys(m))
			}
			node = child
		case kindAfterLast:
			return nil, fmt.Errorf("%s: - names no item", p)
		default:
			if t.insert != "" {
				return nil, fmt.Errorf("%s: :%s names no item", p, t.insert)
			}
			if node == nil && t.optional {
				return nil, nil
			}
			arr, err := list(node, t, stepName(t))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			i, found, err := locate(arr, t)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if !found {
				return nil, nil
			}
			node = arr[i]
		}
	}
	return node, nil
}
