package planner

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/deployment-engine/engine/planner/catalog"
	"github.com/deployment-engine/engine/planner/schema"
	"github.com/deployment-engine/engine/planner/validate"
)

// SchemaCase is one config of testdata/schema_cases.json and whether the
// engine accepts it. The console's test holds its own schema checker to
// the same file.
type schemaCase struct {
	Name   string          `json:"name"`
	Valid  bool            `json:"valid"`
	Config json.RawMessage `json:"config"`
}

func embeddedCatalogs(t *testing.T) map[string]*catalog.Catalog {
	t.Helper()
	cats := map[string]*catalog.Catalog{}
	for _, n := range catalog.Names() {
		c, err := catalog.Load(n, "")
		if err != nil {
			t.Fatal(err)
		}
		cats[n] = c
	}
	return cats
}

// The published schema agrees with the engine's own validation on every
// config of testdata/schema_cases.json: a maintained JSON Schema
// implementation accepts exactly the configs that validation accepts,
// and each case says which those are, so that none agrees by failing on
// something it did not mean.
func TestConfigSchemaAgreesWithValidation(t *testing.T) {
	cats := embeddedCatalogs(t)
	b, err := json.Marshal(schema.Config(cats, BoshCatalog))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	comp := jsonschema.NewCompiler()
	if err := comp.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := comp.Compile("schema.json")
	if err != nil {
		t.Fatalf("the schema does not compile: %v", err)
	}
	raw, err := os.ReadFile("testdata/schema_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []schemaCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 50 {
		t.Fatalf("only %d cases", len(cases))
	}
	p := &Planner{o: Options{Catalogs: cats}}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			_, problems := validate.Config(tc.Config, p.catalogsIn(context.Background()))
			if (len(problems) == 0) != tc.Valid {
				t.Fatalf("validation found %v; the case says valid=%v", problems, tc.Valid)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(tc.Config))
			if err != nil {
				t.Fatal(err)
			}
			verr := sch.Validate(inst)
			if (verr == nil) != tc.Valid {
				t.Errorf("validation found %v; the schema says %v", problems, verr)
			}
		})
	}
}
