package steps

import (
	"reflect"
	"testing"
)

func TestPackagesOfInstallScript(t *testing.T) {
	got := PackagesOf(installScript([]string{"nginx-light", "haproxy"}, "true"))
	if want := []string{"nginx-light", "haproxy"}; !reflect.DeepEqual(got, want) {
		t.Errorf("packages %v, want %v", got, want)
	}
	if got := PackagesOf(installScript(nil, "true")); got != nil {
		t.Errorf("packages of a script without: %v", got)
	}
}
