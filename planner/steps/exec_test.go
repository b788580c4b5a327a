package steps

import (
	"reflect"
	"testing"
)

func TestExecGroups(t *testing.T) {
	four := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		in   string
		want [][]string
		bad  bool
	}{
		{"1", [][]string{{"a"}, {"b"}, {"c"}, {"d"}}, false},
		{"2", [][]string{{"a", "b"}, {"c", "d"}}, false},
		{"3", [][]string{{"a", "b", "c"}, {"d"}}, false},
		{"10", [][]string{four}, false},
		{"50%", [][]string{{"a", "b"}, {"c", "d"}}, false},
		{"10%", [][]string{{"a"}, {"b"}, {"c"}, {"d"}}, false},
		{"100%", [][]string{four}, false},
		{"0", nil, true},
		{"-1", nil, true},
		{"0%", nil, true},
		{"x", nil, true},
	} {
		got, err := ExecGroups(four, tc.in)
		if (err != nil) != tc.bad || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("max_in_flight %q: %v %v, want %v (error %v)", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestExecSteps(t *testing.T) {
	in := Builder{ID: "d-1", Engine: "e-1"}
	planned, batches, err := in.ExecSteps("web", [][]string{{"10.0.0.1", "10.0.0.2"}, {"10.0.0.3"}}, "uptime", 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(planned) != 3 || len(batches) != 2 || !reflect.DeepEqual(batches[1].Steps, []string{"10.0.0.3/web/exec"}) {
		t.Fatalf("steps %d, batches %+v", len(planned), batches)
	}
	last := planned[2]
	if !reflect.DeepEqual(last.After, []string{"10.0.0.1/web/exec", "10.0.0.2/web/exec"}) || planned[0].After != nil {
		t.Errorf("order: first after %v, last after %v", planned[0].After, last.After)
	}
	s := last.Spec
	if s.Script != "uptime" || s.TimeoutS != 30 || !s.KeepOutput || s.Deployment != "d-1" || s.Engine != "e-1" || s.Key != "web.exec" || s.Hash == planned[1].Spec.Hash {
		t.Errorf("spec: %+v", s)
	}
	if _, _, err := in.ExecSteps("web", [][]string{{"10.0.0.1"}}, "uptime", 0); err == nil {
		t.Error("a timeout of 0 was taken")
	}
}
