package integration

import (
	"bytes"
	"os"
	"testing"

	"github.com/deployment-engine/engine/integration/harness"
)

// A stored config survives kill -9 of the engine.
func TestConfigSurvivesKill9(t *testing.T) {
	manual, err := os.ReadFile("../planner/validate/testdata/manual.json")
	if err != nil {
		t.Fatal(err)
	}
	e := harness.Start(t, harness.Options{})
	if code, body := e.Do("POST", "/deployment-engine/config?check=0", manual); code != 201 {
		t.Fatalf("POST: %d %s", code, body)
	}
	e.Kill9()
	e.Restart()
	code, body := e.Do("GET", "/deployment-engine/config", nil)
	if code != 200 || !bytes.Contains(body, []byte("10.10.101.199")) || bytes.Contains(body, []byte("123456")) {
		t.Fatalf("after kill -9: %d %s", code, body)
	}
}
