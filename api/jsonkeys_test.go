package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func TestCheckJSONKeys(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		err        string // "" for none
	}{
		{"empty", ``, ""},
		{"not JSON", `local.log`, ""},
		{"broken JSON", `{"a": 1, "b"`, ""},
		{"broken JSON after a duplicate", `{"a": 1, "a": 2, `, `"a" is given twice`},
		{"no duplicate", `{"a": 1, "b": {"a": 2}, "c": [{"a": 3}, {"a": 4}]}`, ""},
		{"same key in sibling objects", `[{"name": "web"}, {"name": "db"}]`, ""},
		{"top level", `{"name": "web", "ip": "10.0.0.5", "name": "db"}`, `the key "name" is given twice in one object (at the top level)`},
		{"nested", `{"components": {"web": ["10.0.0.1"], "web": ["10.0.0.2"]}}`, `"web" is given twice in one object (at components)`},
		{"in a list", `{"a": [1, {"x": 1}, {"y": 1, "y": 2}]}`, `"y" is given twice in one object (at a[2])`},
		{"escaped the same", `{"ab": 1, "a\u0062": 2}`, `"ab" is given twice`},
		{"empty key", `{"": 1, "": 2}`, `"" is given twice`},
		{"after a nested value", `{"a": {"b": [1, 2]}, "a": 3}`, `"a" is given twice`},
		{"a second value is not looked at", `{"a": 1} {"a": 1, "a": 2}`, ""},
		{"too deep", strings.Repeat("[", maxJSONDepth+1), "nested deeper"},
		{"deep enough", strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkJSONKeys([]byte(tt.body))
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("got %v, want %q", err, tt.err)
			}
		})
	}
}

// Every route that reads a JSON body refuses one with a key twice, with a
// 400 that names the key, before anything acts on it.
func TestDuplicateKeysRefused(t *testing.T) {
	ts, _, _, _ := rolesServer(t)
	for _, tt := range []struct{ method, path, body, key string }{
		{"PUT", "/deployment-engine/stop", `{"name": "web", "ip": "10.0.0.5", "name": "db"}`, "name"},
		{"PUT", "/deployment-engine/restart", `{"name": "web", "ip": "10.0.0.5", "ip": "0.0.0.0"}`, "ip"},
		{"POST", "/deployment-engine/config?check=0", `{"components": {"web": ["10.0.0.1"]}, "properties": {"root": "a", "root": "b"}}`, "root"},
		{"POST", "/deployment-engine/plan", `{"components": {}, "components": {"web": ["10.0.0.1"]}}`, "components"},
		{"POST", "/deployment-engine/scale", `[{"Comp": "web", "Ip": "10.0.0.2", "Ip": "10.0.0.3"}]`, "Ip"},
		{"PUT", "/deployment-engine/heal", `{"enabled": true, "enabled": false}`, "enabled"},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			resp, body := do(t, tt.method, ts.URL+tt.path, tt.body, "Authorization", "Bearer "+adminTok)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `\"`+tt.key+`\" is given twice`) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
}

// FuzzCheckJSONKeys holds checkJSONKeys to an oracle built on encoding/json
// itself: decoding an object into a map calls each value's UnmarshalJSON
// once per key given, while the map keeps one entry per distinct key.
func FuzzCheckJSONKeys(f *testing.F) {
	for _, s := range []string{`{}`, `[]`, `{"a":1,"a":2}`, `{"a":{"b":1,"b":null}}`, `[{"a":1},{"a":1}]`,
		`{"a\u0062":1,"ab":2}`, `{"a":[1,{"x":1,"y":[{"z":1,"z":2}]}]}`, `{"a":null,"b":null}`, `"x"`, `{"a":`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkJSONKeys(b)
		if !json.Valid(b) || bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > 100 {
			return // invalid bodies pass to their decoder; deep ones are the table's
		}
		if want := refDuplicate(b); (err != nil) != want {
			t.Fatalf("checkJSONKeys(%q) = %v; the oracle says duplicate: %v", b, err, want)
		}
	})
}

// refCalls counts the UnmarshalJSON calls of the object being decoded.
var refCalls *int

type refValue struct{ dup bool }

func (v *refValue) UnmarshalJSON(b []byte) error {
	*refCalls++
	v.dup = refDuplicate(b)
	return nil
}

func refDuplicate(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return false
	}
	switch b[0] {
	case '{':
		n, saved := 0, refCalls
		refCalls = &n
		var m map[string]refValue
		_ = json.Unmarshal(b, &m)
		refCalls = saved
		if n != len(m) {
			return true
		}
		for _, v := range m {
			if v.dup {
				return true
			}
		}
	case '[':
		var list []json.RawMessage
		_ = json.Unmarshal(b, &list)
		for _, x := range list {
			if refDuplicate(x) {
				return true
			}
		}
	}
	return false
}
