package api

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/deployment-engine/engine/services/contract"
)

func TestStepQuery(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  *contract.StepQuery
		err   string
	}{
		{"", nil, ""},
		{"other=1", nil, ""},
		{"steps=0", &contract.StepQuery{None: true}, ""},
		{"steps=all", &contract.StepQuery{}, ""},
		{"steps=", &contract.StepQuery{}, ""},
		{"steps=failed", &contract.StepQuery{States: []string{"failed"}}, ""},
		{"steps=failed,running,failed,", &contract.StepQuery{States: []string{"failed", "running"}}, ""},
		{"steps=queued&offset=200&limit=50", &contract.StepQuery{States: []string{"queued"}, Offset: 200, Limit: 50}, ""},
		{"offset=0", &contract.StepQuery{}, ""},
		{"limit=1000", &contract.StepQuery{Limit: 1000}, ""},
		{"steps=done", nil, `unknown step state "done"`},
		{"steps=1", nil, `unknown step state "1"`},
		{"steps=0&limit=10", nil, "steps=0 (summary=1) asks for no step"},
		{"steps=0&offset=1", nil, "steps=0 (summary=1) asks for no step"},
		{"limit=0", nil, "limit:"},
		{"limit=1001", nil, "limit: 1001 is not between 1 and 1000"},
		{"limit=ten", nil, "limit:"},
		{"offset=-1", nil, "offset:"},
		{"offset=99999999999999999999", nil, "offset:"},
		{"offset=2000000", nil, "offset: 2000000 is not between"},
		{"summary=1", &contract.StepQuery{None: true}, ""},
		{"summary=0", &contract.StepQuery{}, ""},
		{"summary=0&steps=failed&limit=5", &contract.StepQuery{States: []string{"failed"}, Limit: 5}, ""},
		{"summary=yes", nil, `summary: "yes" is neither 1`},
		{"summary=1&steps=failed", nil, "summary=1 asks for no step"},
		{"summary=1&limit=10", nil, "steps=0 (summary=1) asks for no step"},
	} {
		v, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := stepQuery(v)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one saying %q", tc.query, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v %v, want %+v", tc.query, got, err, tc.want)
		}
	}
}
