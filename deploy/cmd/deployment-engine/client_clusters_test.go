package main

import (
	"strings"
	"testing"
)

// clusters create and list against the real engine; --cluster and
// DE_CLUSTER send every command to the cluster they name.
func TestCLIClusters(t *testing.T) {
	startEngine(t)
	if r := cli(t, "clusters", "create", "prod"); r.code != exitOK || !strings.Contains(r.stdout, "cluster prod made") {
		t.Fatalf("create: %+v", r)
	}
	if r := cli(t, "clusters", "create", "prod"); r.code != exitFailed || !strings.Contains(r.stderr, "cluster prod exists") {
		t.Fatalf("create twice: %+v", r)
	}
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false", "--cluster", "prod"); r.code != exitOK {
		t.Fatalf("config set on prod: %+v", r)
	}
	if r := cli(t, "config", "get"); r.code != exitFailed || !strings.Contains(r.stderr, "no config submitted") {
		t.Fatalf("the default cluster's config: %+v", r)
	}
	t.Setenv("DE_CLUSTER", "prod")
	if r := cli(t, "config", "get"); r.code != exitOK || !strings.Contains(r.stdout, "127.0.0.2") {
		t.Fatalf("prod's config by DE_CLUSTER: %+v", r)
	}
	// The default cluster may not take prod's nodes.
	if r := cli(t, "config", "set", writeFile(t, goodConfig), "--check=false", "--cluster", "default"); r.code != exitFailed ||
		!strings.Contains(r.stderr, "belongs to cluster prod") {
		t.Fatalf("the default cluster taking prod's nodes: %+v", r)
	}
	r := cli(t, "clusters")
	if r.code != exitOK || !strings.Contains(r.stdout, "NAME") {
		t.Fatalf("clusters: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "default ") || !strings.HasPrefix(lines[2], "prod ") ||
		!strings.Contains(lines[2], "starter") || !strings.Contains(lines[2], "127.0.0.2,127.0.0.3") {
		t.Fatalf("clusters:\n%s", r.stdout)
	}
	if r := cli(t, "clusters", "show", "nope"); r.code != exitFailed || !strings.Contains(r.stderr, "no cluster") {
		t.Fatalf("show nope: %+v", r)
	}
	if r := cli(t, "clusters", "create", "qa"); r.code != exitOK {
		t.Fatalf("create qa: %+v", r)
	}
	if r := cli(t, "clusters", "delete", "qa", "--follow"); r.code != exitOK || !strings.Contains(r.stdout, "cluster qa deleted") {
		t.Fatalf("delete qa: %+v", r)
	}
	if r := cli(t, "clusters", "delete", "default"); r.code != exitFailed || !strings.Contains(r.stderr, "the default cluster is not deleted") {
		t.Fatalf("delete default: %+v", r)
	}
	if r := cli(t, "status", "--cluster", "Bad_Name"); r.code != exitUsage || !strings.Contains(r.stderr, "is not a cluster name") {
		t.Fatalf("a bad --cluster: %+v", r)
	}
	if r := cli(t, "status", "--cluster", "qa"); r.code != exitFailed || !strings.Contains(r.stderr, `no cluster \"qa\"`) && !strings.Contains(r.stderr, `no cluster "qa"`) {
		t.Fatalf("a cluster that is not there: %+v", r)
	}
}
