package bosh

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/deployment-engine/engine/services/contract"
)

// Instance is one job instance as planned: its rendered files and the
// monit processes it runs.
type Instance struct {
	Job, Node string
	Index     int
	Files     []contract.StepFile
	Monit     string
	Processes []string
	Hash      string
	// Errand is set for an errand's instance (IsErrand): placed, never
	// started.
	Errand bool
	// BPM names the processes of the job's bpm config (config/bpm.yml),
	// each with a launch file the engine's bpm runs (bpm.go).
	BPM []string
	// UsesBPM is set when the job's monit file runs bpm (bpmBin): it
	// registers after the job named bpm on its node started.
	UsesBPM bool
}

var (
	stopRe    = regexp.MustCompile(`(stop\s+program\s*=?\s*)"([^"]*)"`)
	destRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./+-]*$`)
	processRe = regexp.MustCompile(`(?m)^\s*check\s+process\s+"?([^\s"]+)"?`)
)

// Processes lists the processes a monit file checks.
func Processes(monit string) []string {
	var out []string
	for _, m := range processRe.FindAllStringSubmatch(monit, -1) {
		out = append(out, m[1])
	}
	return out
}

// RenderAll renders every instance of the deployment in one run of the
// renderer; the problems name each instance whose templates fail.
func RenderAll(ctx context.Context, d *Deployment) ([]Instance, []contract.Problem, error) {
	var jobs []RenderJob
	var insts []Instance
	for _, job := range contract.SortedKeys(d.Jobs) {
		for i, ip := range d.Jobs[job] {
			jobs = append(jobs, RenderJob{Job: d.Release.Specs[job], Spec: d.Spec(job, i)})
			insts = append(insts, Instance{Job: job, Node: ip, Index: i})
		}
	}
	if len(jobs) == 0 {
		return nil, nil, nil
	}
	out, err := Render(ctx, jobs)
	if err != nil {
		return nil, nil, err
	}
	var ps []contract.Problem
	bpmOn := map[string]bool{}
	for _, ip := range d.Jobs[BPMJob] {
		bpmOn[ip] = true
	}
	for k, r := range out {
		in := &insts[k]
		if r.Error != "" {
			ps = append(ps, contract.Problem{Path: "properties.jobs." + in.Job, Component: in.Job, IP: in.Node,
				Reason: fmt.Sprintf("job %s (instance %d): %s", in.Job, in.Index, r.Error)})
			continue
		}
		spec := d.Release.Specs[in.Job]
		in.Errand = IsErrand(spec)
		pkgHashes := []string{}
		for _, p := range d.JobPackages(in.Job) {
			pk, _ := d.Release.Package(p)
			pkgHashes = append(pkgHashes, p+"@"+pk.Version+"@"+pk.SHA1)
		}
		files, launch, err := bpmFiles(in.Job, r.Files)
		if err != nil {
			ps = append(ps, contract.Problem{Path: "properties.jobs." + in.Job, Component: in.Job, IP: in.Node,
				Reason: fmt.Sprintf("job %s (instance %d): %s: %v", in.Job, in.Index, bpmConfigDest, err)})
			continue
		}
		for _, f := range launch {
			in.BPM = append(in.BPM, strings.TrimPrefix(f.Dest, bpmDir+"/"))
		}
		if in.UsesBPM = strings.Contains(r.Monit, bpmBin); in.UsesBPM && !bpmOn[in.Node] {
			ps = append(ps, contract.Problem{Path: "components." + in.Job, Component: in.Job, IP: in.Node,
				Reason: fmt.Sprintf("job %s runs its processes through bpm (%s in its monit file), and no job named %s is placed on %s: colocate bpm-release's %s job with it, as BOSH needs it too", in.Job, bpmBin, BPMJob, in.Node, BPMJob)})
		}
		var sum strings.Builder
		for _, f := range files {
			if !destRe.MatchString(f.Dest) || bad(f.Dest) {
				ps = append(ps, contract.Problem{Path: "components." + in.Job, Component: in.Job, Reason: fmt.Sprintf("template destination %q is not a plain path", f.Dest)})
				continue
			}
			fmt.Fprintf(&sum, "%s %x\n", f.Dest, sha256.Sum256([]byte(f.Content)))
		}
		// The launch files follow the engine's bpm: a change of them
		// applies the job again.
		for _, f := range launch {
			fmt.Fprintf(&sum, "%s %x\n", f.Dest, sha256.Sum256([]byte(f.Content)))
		}
		from := d.Release.JobFrom(in.Job)
		in.Hash = hashOf(from.Name, from.Version, in.Job, spec.Version, sum.String(), r.Monit, strings.Join(pkgHashes, ","))
		dir := fmt.Sprintf("%s/data/jobs/%s/%s", VcapDir, in.Job, in.Hash)
		for _, f := range append(files, launch...) {
			mode := uint32(0o644)
			if strings.HasPrefix(f.Dest, "bin/") {
				mode = 0o755
			}
			in.Files = append(in.Files, stepFile(dir+"/"+f.Dest, mode, []byte(f.Content)))
		}
		monit, wrappers := drainOnStop(in.Job, r.Monit)
		for _, name := range contract.SortedKeys(wrappers) {
			in.Files = append(in.Files, stepFile(dir+"/"+name, 0o755, []byte(wrappers[name])))
		}
		sort.Slice(in.Files, func(a, b int) bool { return in.Files[a].Path < in.Files[b].Path })
		in.Monit = monit
		in.Processes = Processes(r.Monit)
	}
	return insts, ps, nil
}

// drainOnStop points each stop program of a job's monit file at a wrapper
// (.de/stop-N in the job's dir) that runs the job's drain first, as BOSH
// does before it stops a job, then the release's own stop program.
func drainOnStop(job, monit string) (string, map[string]string) {
	files := map[string]string{}
	out := stopRe.ReplaceAllStringFunc(monit, func(m string) string {
		sub := stopRe.FindStringSubmatch(m)
		name := fmt.Sprintf(".de/stop-%d", len(files)+1)
		files[name] = stopWrapper(job, sub[2])
		return sub[1] + `"` + JobsDir + "/" + job + "/" + name + `"`
	})
	return out, files
}

func hashOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s;", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func stepFile(path string, mode uint32, content []byte) contract.StepFile {
	sum := sha256.Sum256(content)
	return contract.StepFile{Path: path, Mode: mode, Content: content, SHA256: hex.EncodeToString(sum[:])}
}

func bad(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "" {
			return true
		}
	}
	return false
}
