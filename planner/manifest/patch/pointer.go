// Package patch applies BOSH ops files to a YAML document, with the
// semantics go-patch documents: `replace` and `remove` operations whose
// paths are pointers such as /instance_groups/name=web/jobs/-,
// /key?/nested, /array/0:before.
//
// A document is what yaml.v3 decodes into an `any`: map[string]any,
// []any and scalars. Operations change it in place where they can and
// return the new root.
package patch

import (
	"fmt"
	"strconv"
	"strings"
)

type kind int

const (
	kindKey       kind = iota // /name or /name?
	kindIndex                 // /0, /-1, /0:prev
	kindAfterLast             // /-
	kindMatch                 // /name=web or /name=web?
)

// token is one step of a pointer.
type token struct {
	kind     kind
	key      string // the key, or the matched key of key=value
	value    string // the matched value of key=value
	index    int    // kindIndex, before shifts
	shift    int    // :prev is -1, :next is +1, added up
	insert   string // "before" or "after", on the last token only
	optional bool   // the token may be missing: it is created (replace) or skipped (remove)
}

// Pointer is a parsed path. Its String is the text it was parsed from.
type Pointer struct {
	raw    string
	tokens []token
}

func (p Pointer) String() string { return p.raw }

// maxPointer bounds a pointer's length: an ops file is outside input.
const maxPointer = 4096

// ParsePointer reads a path as go-patch writes it. "" is the document's
// root ("/" is the key "", as in RFC 6901). A `?` after a key (or after a key=value's value) makes that step
// and every key step after it optional.
func ParsePointer(s string) (Pointer, error) {
	p := Pointer{raw: s}
	if len(s) > maxPointer {
		return p, fmt.Errorf("path is %d bytes long; at most %d", len(s), maxPointer)
	}
	if s == "" {
		return p, nil
	}
	if !strings.HasPrefix(s, "/") {
		return p, fmt.Errorf("path %q must start with / (or be \"\", the whole document)", s)
	}
	optional := false
	parts := strings.Split(s[1:], "/")
	for i, part := range parts {
		t, err := parseToken(part, optional)
		if err != nil {
			return p, fmt.Errorf("path %q, step %d (%q): %w", s, i+1, part, err)
		}
		if t.insert != "" && i != len(parts)-1 {
			return p, fmt.Errorf("path %q: :%s may only end a path", s, t.insert)
		}
		if t.kind == kindAfterLast && i != len(parts)-1 {
			return p, fmt.Errorf("path %q: - (after the last item) may only end a path", s)
		}
		optional = t.optional
		p.tokens = append(p.tokens, t)
	}
	return p, nil
}

func parseToken(part string, optional bool) (token, error) {
	mods := strings.Split(part, ":")
	name, mods := mods[0], mods[1:]
	t := token{optional: optional}
	switch {
	case name == "-":
		t.kind = kindAfterLast
	case isInt(name):
		n, err := strconv.Atoi(name)
		if err != nil {
			return t, fmt.Errorf("index: %w", err)
		}
		t.kind, t.index = kindIndex, n
	case strings.Contains(name, "="):
		k, v, _ := strings.Cut(name, "=")
		if strings.HasSuffix(v, "?") {
			v, t.optional = strings.TrimSuffix(v, "?"), true
		}
		var err error
		if t.key, err = unescape(k); err != nil {
			return t, err
		}
		if t.value, err = unescape(v); err != nil {
			return t, err
		}
		t.kind = kindMatch
	default:
		if strings.HasSuffix(name, "?") {
			name, t.optional = strings.TrimSuffix(name, "?"), true
		}
		var err error
		if t.key, err = unescape(name); err != nil {
			return t, err
		}
		t.kind = kindKey
	}
	for _, m := range mods {
		switch m {
		case "prev", "next":
			if t.kind != kindIndex && t.kind != kindMatch {
				return t, fmt.Errorf(":%s follows an index or a key=value only", m)
			}
			if m == "prev" {
				t.shift--
			} else {
				t.shift++
			}
		case "before", "after":
			if t.kind != kindIndex && t.kind != kindMatch {
				return t, fmt.Errorf(":%s follows an index or a key=value only", m)
			}
			if t.insert != "" {
				return t, fmt.Errorf(":%s after :%s", m, t.insert)
			}
			t.insert = m
		default:
			return t, fmt.Errorf("unknown modifier :%s (prev, next, before or after; a literal colon is ~7)", m)
		}
	}
	return t, nil
}

func isInt(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// unescape undoes go-patch's escapes: ~0 is ~, ~1 /, ~2 ?, ~3 =, ~7 :.
func unescape(s string) (string, error) {
	if !strings.Contains(s, "~") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '~' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("a ~ ends the step; escapes are ~0 ~1 ~2 ~3 ~7")
		}
		i++
		switch s[i] {
		case '0':
			b.WriteByte('~')
		case '1':
			b.WriteByte('/')
		case '2':
			b.WriteByte('?')
		case '3':
			b.WriteByte('=')
		case '7':
			b.WriteByte(':')
		default:
			return "", fmt.Errorf("unknown escape ~%c; escapes are ~0 ~1 ~2 ~3 ~7", s[i])
		}
	}
	return b.String(), nil
}
