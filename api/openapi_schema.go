package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"

	"github.com/deployment-engine/engine/services/contract"
)

// schemaObj is a JSON Schema (2020-12, as OpenAPI 3.1 has it) as it is
// written: encoding/json sorts its keys, so the document is stable.
type schemaObj = map[string]any

// schemas turns Go types into JSON Schemas by reflection, as
// encoding/json writes and reads them: a field's JSON name is its tag's,
// one without omitempty or omitzero is required, an embedded struct's
// fields are its own, a pointer, a slice or a map may be null, []byte is
// base64 and time.Time a date-time. Every named struct becomes a
// component, referred to by its type's name.
type schemas struct {
	components map[string]schemaObj
	// byName catches two types of one name: their components would clash.
	byName map[string]reflect.Type
	errs   []string
}

func newSchemas() *schemas {
	return &schemas{components: map[string]schemaObj{}, byName: map[string]reflect.Type{}}
}

var (
	timeType    = reflect.TypeFor[time.Time]()
	rawJSONType = reflect.TypeFor[json.RawMessage]()
)

// custom is the schema of a type whose JSON is not what its Go fields
// say (it marshals or unmarshals itself); false for any other.
func (s *schemas) custom(t reflect.Type) (schemaObj, bool) {
	switch t {
	case reflect.TypeFor[contract.Flex]():
		// A number or a string holding one; written as a number, or null
		// when unset.
		return schemaObj{"anyOf": anyType("integer", "string", "null"),
			"description": "a whole number >= 0, as a JSON number or a string holding one; null when unset"}, true
	case reflect.TypeFor[contract.HealConfig]():
		return schemaObj{"oneOf": []any{schemaObj{"type": "boolean"}, s.structSchema(t)}}, true
	}
	return nil, false
}

// customFields are fields whose JSON a type's UnmarshalJSON widens.
var customFields = map[string]schemaObj{
	// A number or a percentage; read as a number too.
	"UpdateSettings.max_in_flight":   {"anyOf": anyType("string", "integer"), "description": `a number of instances, or a percentage of them ("50%")`},
	"FleetExecRequest.max_in_flight": {"anyOf": anyType("string", "integer"), "description": `nodes at once: a number, or a percentage of the nodes ("50%"); default 1`},
	"copyRequest.max_in_flight":      {"anyOf": anyType("string", "integer"), "description": `nodes at once: a number, or a percentage of the nodes ("50%"); default 1`},
}

// ref is the schema of t, a reference for a named struct.
func (s *schemas) ref(t reflect.Type) schemaObj {
	if _, ok := s.custom(t); ok {
		return s.component(t, func() schemaObj { sch, _ := s.custom(t); return sch })
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullable(s.ref(t.Elem()))
	case reflect.Struct:
		if t == timeType {
			return schemaObj{"type": "string", "format": "date-time"}
		}
		return s.component(t, func() schemaObj { return s.structSchema(t) })
	case reflect.Slice, reflect.Array:
		if t == rawJSONType {
			return schemaObj{}
		}
		if t.Elem().Kind() == reflect.Uint8 {
			return schemaObj{"type": "string", "contentEncoding": "base64"}
		}
		return schemaObj{"type": "array", "items": s.ref(t.Elem())}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			s.errs = append(s.errs, t.String()+": a map whose keys are not strings")
		}
		return schemaObj{"type": "object", "additionalProperties": s.ref(t.Elem())}
	case reflect.Interface:
		return schemaObj{}
	case reflect.String:
		return schemaObj{"type": "string"}
	case reflect.Bool:
		return schemaObj{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		sch := schemaObj{"type": "integer"}
		if t.Kind() >= reflect.Uint {
			sch["minimum"] = 0
		}
		return sch
	case reflect.Float32, reflect.Float64:
		return schemaObj{"type": "number"}
	}
	s.errs = append(s.errs, t.String()+": no JSON Schema for its kind")
	return schemaObj{}
}

// component registers t's schema under its name once and refers to it.
func (s *schemas) component(t reflect.Type, build func() schemaObj) schemaObj {
	name := t.Name()
	if name == "" {
		return build()
	}
	ref := schemaObj{"$ref": "#/components/schemas/" + name}
	if prev, ok := s.byName[name]; ok {
		if prev != t {
			s.errs = append(s.errs, name+": two types of this name ("+prev.PkgPath()+", "+t.PkgPath()+")")
		}
		return ref
	}
	s.byName[name] = t
	s.components[name] = nil // taken: a type that holds itself refers to it
	s.components[name] = build()
	return ref
}

// structSchema is t's fields as encoding/json sees them. No other field
// is allowed: a reply that grows one the document lacks is drift.
func (s *schemas) structSchema(t reflect.Type) schemaObj {
	props := schemaObj{}
	var required []string
	s.fields(t, props, &required)
	out := schemaObj{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

func (s *schemas) fields(t reflect.Type, props schemaObj, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				s.fields(ft, props, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		sch, ok := customFields[t.Name()+"."+name]
		if !ok {
			sch = s.ref(f.Type)
		}
		props[name] = sch
		if !hasOpt(opts, "omitempty") && !hasOpt(opts, "omitzero") {
			*required = append(*required, name)
			// encoding/json writes a nil slice or map as null.
			if k := f.Type.Kind(); (k == reflect.Slice && f.Type.Elem().Kind() != reflect.Uint8) || k == reflect.Map {
				props[name] = nullable(sch)
			}
		}
	}
}

func hasOpt(opts, name string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == name {
			return true
		}
	}
	return false
}

// anyType is the schemas of a value of any of types, for anyOf. JSON
// Schema also writes it {"type": [types...]}, but client generators
// (oapi-codegen) take a list of types only as one type or null; as anyOf
// they make it a union type with a method for each.
func anyType(types ...string) []any {
	out := make([]any, len(types))
	for i, t := range types {
		out[i] = schemaObj{"type": t}
	}
	return out
}

// nullable is sch or null.
func nullable(sch schemaObj) schemaObj {
	if t, ok := sch["type"].(string); ok {
		out := schemaObj{}
		for k, v := range sch {
			out[k] = v
		}
		out["type"] = []string{t, "null"}
		return out
	}
	return schemaObj{"anyOf": []any{sch, schemaObj{"type": "null"}}}
}
