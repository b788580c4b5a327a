package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// maxJSONDepth is encoding/json's own bound on nesting: a body deeper than
// it would be refused by every decoder behind the API anyway.
const maxJSONDepth = 10000

var errTooDeep = fmt.Errorf("JSON nested deeper than %d levels", maxJSONDepth)

// checkJSONKeys refuses a JSON body that gives a key twice in one object,
// naming the key and where it is. encoding/json keeps the last silently;
// the client may have meant the first, and a reader that keeps the first
// would see another request. A body that is not JSON, or not valid JSON,
// passes: the decoder behind its route names its fault. The walk reads
// each token once and keeps only the keys of the objects it is inside.
func checkJSONKeys(b []byte) error {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || (t[0] != '{' && t[0] != '[') {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	// frame is an object or array the walk is inside.
	type frame struct {
		object  bool
		keys    map[string]struct{}
		wantKey bool
		key     string // the object's key being read
		n       int    // the array's values begun
	}
	var stack []frame
	where := func() string {
		var p strings.Builder
		for _, f := range stack[:len(stack)-1] {
			if f.object {
				if p.Len() > 0 {
					p.WriteByte('.')
				}
				p.WriteString(f.key)
			} else {
				p.WriteString("[" + strconv.Itoa(f.n-1) + "]")
			}
		}
		if p.Len() == 0 {
			return "the top level"
		}
		return contract.Clip(p.String())
	}
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // not JSON past here: not this check's to name
		}
		if len(stack) > 0 {
			top := &stack[len(stack)-1]
			switch {
			case top.object && top.wantKey:
				if d, ok := tok.(json.Delim); ok && d == '}' {
					break
				}
				k, _ := tok.(string)
				if _, dup := top.keys[k]; dup {
					return fmt.Errorf("the key %q is given twice in one object (at %s); give each key once", contract.Clip(k), where())
				}
				if top.keys == nil {
					top.keys = map[string]struct{}{}
				}
				top.keys[k] = struct{}{}
				top.key, top.wantKey = k, false
				continue
			case top.object:
				top.wantKey = true // this token is the key's value
			default:
				if d, ok := tok.(json.Delim); !ok || d != ']' {
					top.n++
				}
			}
		}
		d, ok := tok.(json.Delim)
		if !ok {
			continue
		}
		switch d {
		case '{', '[':
			if len(stack) == maxJSONDepth {
				return errTooDeep
			}
			stack = append(stack, frame{object: d == '{', wantKey: d == '{'})
		case '}', ']':
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return nil // the first value is whole; what follows is the decoder's
			}
		}
	}
}
