package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deployment-engine/engine/api/openapitest"
	"github.com/deployment-engine/engine/integration/genclient"
)

// A client generated from the engine's OpenAPI document alone (oapi-codegen,
// see integration/genclient) deploys the starter stack: it stores the
// config, checking the nodes, deploys it, follows the deployment to its
// end and reads every instance RUNNING. Every answer it reads is also
// held to the document the engine serves.
func TestGeneratedClientDeploysStarterStack(t *testing.T) {
	e := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c := generatedClient(ctx, t, e.URL(), e.Token)

	comps := map[string][]string{
		"haproxy": ips(0), "etcd": ips(0),
		"web":   ips(1),
		"nats":  ips(1, 3),
		"redis": ips(2), "database": ips(3),
	}
	check := genclient.N1
	cfg, err := c.PostConfigWithResponse(ctx, &genclient.PostConfigParams{Check: &check}, starterConfig(t, comps))
	if err != nil {
		t.Fatalf("POST /config: %v", err)
	}
	if cfg.JSON201 == nil {
		t.Fatalf("POST /config: %d %s", cfg.StatusCode(), cfg.Body)
	}
	if !cfg.JSON201.Checked || cfg.JSON201.Hardware == nil || len(*cfg.JSON201.Hardware) != len(bed.Nodes) {
		t.Errorf("POST /config: checked %v, hardware %v; want the %d nodes checked", cfg.JSON201.Checked, cfg.JSON201.Hardware, len(bed.Nodes))
	}

	dep, err := c.DeployWithResponse(ctx, &genclient.DeployParams{})
	if err != nil {
		t.Fatalf("POST /deploy: %v", err)
	}
	if dep.JSON202 == nil || dep.JSON202.Id == "" {
		t.Fatalf("POST /deploy: %d %s", dep.StatusCode(), dep.Body)
	}
	d := followToEnd(ctx, t, c, dep.JSON202.Id)
	if d.State != "succeeded" {
		t.Fatalf("deployment %s %s: %s\nengine log:\n%s", d.Id, d.State, failedSteps(d), tail(e.Log(), 40))
	}
	t.Logf("deployment %s succeeded: %d steps, %d changed", d.Id, stepCount(d), d.Changed)

	want := map[string]bool{}
	for comp, nodes := range comps {
		for _, ip := range nodes {
			want[comp+"@"+ip] = true
		}
	}
	allRunning(ctx, t, c, want)
}

// generatedClient is the generated client on the engine at url with
// token, every answer it reads held to the OpenAPI document the engine
// serves, which it fetches itself.
func generatedClient(ctx context.Context, t *testing.T, url, token string) *genclient.ClientWithResponses {
	t.Helper()
	plain, err := genclient.NewClientWithResponses(url)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := plain.OpenapiWithResponse(ctx)
	if err != nil || doc.StatusCode() != http.StatusOK {
		t.Fatalf("GET the OpenAPI document: %v %s", err, doc.Body)
	}
	var mu sync.Mutex
	var drift []string
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range drift {
			t.Errorf("OpenAPI drift: %s", d)
		}
	})
	checker, err := openapitest.Load(ctx, doc.Body, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		drift = append(drift, err.Error())
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := genclient.NewClientWithResponses(url,
		genclient.WithHTTPClient(&http.Client{Transport: checker.Transport(nil), Timeout: time.Minute}),
		genclient.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// starterConfig is the e2e suite's config of the starter catalog, in the
// generated client's types: disksize as a string, as an operator may
// write it, the other numbers as numbers.
func starterConfig(t *testing.T, comps map[string][]string) genclient.Config {
	t.Helper()
	var disksize, checkdisk, adduser genclient.Flex
	for _, err := range []error{disksize.FromFlex1("1"), checkdisk.FromFlex0(1), adduser.FromFlex0(0)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	catalog, key := "starter", bed.KeyPath
	return genclient.Config{Components: &comps, Properties: genclient.Properties{
		Catalog: &catalog, Domain: "e2e.local", Home: bed.Home, Key: &key,
		Disksize: &disksize, Checkdisk: &checkdisk, Adduser: &adduser}}
}

// followToEnd asks for deployment id's summary until it has ended, then
// answers it with every step.
func followToEnd(ctx context.Context, t *testing.T, c *genclient.ClientWithResponses, id string) genclient.Deployment {
	t.Helper()
	summary := "0"
	for state := ""; ; {
		r, err := c.GetDeploymentWithResponse(ctx, id, &genclient.GetDeploymentParams{Steps: &summary})
		if err != nil {
			t.Fatalf("GET /deployments/%s: %v (last state %q)", id, err, state)
		}
		if r.JSON200 == nil {
			t.Fatalf("GET /deployments/%s: %d %s", id, r.StatusCode(), r.Body)
		}
		page, err := r.JSON200.AsDeploymentPage()
		if err != nil {
			t.Fatalf("GET /deployments/%s: %v", id, err)
		}
		if state = page.State; state != "pending" && state != "running" {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("deployment %s still %s: %v", id, state, ctx.Err())
		case <-time.After(time.Second):
		}
	}
	r, err := c.GetDeploymentWithResponse(ctx, id, &genclient.GetDeploymentParams{})
	if err != nil || r.JSON200 == nil {
		t.Fatalf("GET /deployments/%s: %v %s", id, err, r.Body)
	}
	d, err := r.JSON200.AsDeployment()
	if err != nil {
		t.Fatalf("GET /deployments/%s: %v", id, err)
	}
	return d
}

// allRunning waits for GET /status to list every instance of want, each
// RUNNING, and nothing that is not: monit reports a started service on
// its next cycle.
func allRunning(ctx context.Context, t *testing.T, c *genclient.ClientWithResponses, want map[string]bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := c.StatusWithResponse(ctx)
		if err != nil {
			t.Fatalf("GET /status: %v", err)
		}
		if r.JSON200 == nil {
			t.Fatalf("GET /status: %d %s", r.StatusCode(), r.Body)
		}
		var off []string
		seen := map[string]bool{}
		for _, s := range *r.JSON200 {
			seen[s.Comp+"@"+s.Ip] = true
			if s.Status != "RUNNING" {
				off = append(off, fmt.Sprintf("%s@%s %s", s.Comp, s.Ip, s.Status))
			}
		}
		for inst := range want {
			if !seen[inst] {
				off = append(off, inst+" not listed")
			}
		}
		if len(off) == 0 {
			t.Logf("GET /status: %d instances, every one RUNNING", len(*r.JSON200))
			return
		}
		if time.Now().After(deadline) {
			slices.Sort(off)
			t.Fatalf("GET /status: not every instance RUNNING after the deployment: %s", strings.Join(off, "; "))
		}
		time.Sleep(2 * time.Second)
	}
}

func stepCount(d genclient.Deployment) int {
	if d.Steps == nil {
		return 0
	}
	return len(*d.Steps)
}

// failedSteps names the steps that did not succeed, with their errors.
func failedSteps(d genclient.Deployment) string {
	var out []string
	if d.Error != nil {
		out = append(out, *d.Error)
	}
	if d.Steps != nil {
		for _, st := range *d.Steps {
			if st.State != "succeeded" && st.State != "unchanged" {
				out = append(out, fmt.Sprintf("%s %s: %s", st.Id, st.State, st.Error))
			}
		}
	}
	return strings.Join(out, "\n")
}
