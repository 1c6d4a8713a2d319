// Package ci tests the CI recipes of this directory: the GitHub Actions workflow's steps run,
// as its runner would run them, against the local hub; the iotplan commands of every recipe
// must parse with the CLI. A recipe that drifts from the CLI fails here.
package ci

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// workflow is the part of a GitHub Actions workflow the recipe uses
// (https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-syntax).
type workflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]*job   `yaml:"jobs"`
}

type job struct {
	If      string            `yaml:"if"`
	Needs   any               `yaml:"needs"` // a job id or a list of them
	Env     map[string]string `yaml:"env"`
	Outputs map[string]string `yaml:"outputs"`
	Steps   []step            `yaml:"steps"`
}

type step struct {
	Name string            `yaml:"name"`
	ID   string            `yaml:"id"`
	If   string            `yaml:"if"`
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	With map[string]string `yaml:"with"`
	Env  map[string]string `yaml:"env"`
}

func (j *job) needs() []string {
	switch n := j.Needs.(type) {
	case string:
		return []string{n}
	case []any:
		var out []string
		for _, x := range n {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

func loadYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// buildIotplan builds the iotplan binary into a directory for PATH, as 'go install' would.
func buildIotplan(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the iotplan binary")
	}
	bash, err := exec.LookPath("bash")
	if err != nil || bash == "" {
		t.Skip("the recipes' steps need bash")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "iotplan"), "github.com/iotplan/iotplan/cmd/iotplan")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return dir
}

// runner plays the GitHub Actions runner for the recipe's jobs: each job in a fresh checkout
// at the same workspace path (as on GitHub-hosted runners), steps run with 'bash
// --noprofile --norc -eo pipefail', the shell 'shell: bash' names
// (https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-syntax#jobsjob_idstepsshell),
// with GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files
// (https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands).
type runner struct {
	t         *testing.T
	wf        *workflow
	bin       string            // the directory of the iotplan binary
	workspace string            // GITHUB_WORKSPACE
	exprs     map[string]string // values of ${{ … }} expressions: secrets, vars, github.*
	hubEnv    []string          // the environment that makes the "real" hub trusted
	artifacts map[string]map[string][]byte
}

// jobRun is what a job did.
type jobRun struct {
	outputs map[string]string            // the job's outputs
	steps   map[string]map[string]string // step id → its outputs
	summary string                       // GITHUB_STEP_SUMMARY
	skipped []string                     // steps not run by the test (installing, the GitHub CLI) whose if held
}

var exprRE = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// expand replaces ${{ … }} expressions with values; an expression the test does not know
// fails it, so a recipe cannot use one unnoticed.
func (r *runner) expand(s string, ctx map[string]string) string {
	return exprRE.ReplaceAllStringFunc(s, func(m string) string {
		e := exprRE.FindStringSubmatch(m)[1]
		if v, ok := ctx[e]; ok {
			return v
		}
		if v, ok := r.exprs[e]; ok {
			return v
		}
		r.t.Fatalf("unknown expression ${{ %s }}", e)
		return ""
	})
}

var condRE = regexp.MustCompile(`^([a-z_.A-Z0-9-]+)\s*(==|!=)\s*'([^']*)'$`)

// cond evaluates the conditions the recipe uses: comparisons of github.event_name,
// needs.J.outputs.O and steps.S.outputs.O with a string, joined by && and ||.
func (r *runner) cond(expr string, ctx map[string]string) bool {
	if strings.TrimSpace(expr) == "" {
		return true
	}
	for _, or := range strings.Split(expr, "||") {
		all := true
		for _, and := range strings.Split(or, "&&") {
			m := condRE.FindStringSubmatch(strings.TrimSpace(and))
			if m == nil {
				r.t.Fatalf("condition %q: the test understands only X == 'v', &&, ||", expr)
			}
			v, ok := ctx[m[1]]
			if !ok {
				r.t.Fatalf("condition %q: unknown %s", expr, m[1])
			}
			if (v == m[3]) != (m[2] == "==") {
				all = false
			}
		}
		if all {
			return true
		}
	}
	return false
}

// event runs the jobs of the workflow that an event runs, in the order of their needs.
func (r *runner) event(name string) map[string]*jobRun {
	r.t.Helper()
	done := map[string]*jobRun{}
	ran := map[string]*jobRun{}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range r.wf.Jobs {
			if !yield(id) {
				return
			}
		}
	})
	for len(done) < len(ids) {
		progressed := false
		for _, id := range ids {
			j := r.wf.Jobs[id]
			if done[id] != nil || slices.ContainsFunc(j.needs(), func(n string) bool { return done[n] == nil }) {
				continue
			}
			progressed = true
			ctx := map[string]string{"github.event_name": name}
			skip := false
			for _, n := range j.needs() {
				if ran[n] == nil {
					skip = true // a job whose needs did not run is skipped
				}
				for k, v := range done[n].outputs {
					ctx["needs."+n+".outputs."+k] = v
				}
			}
			done[id] = &jobRun{}
			if skip || !r.cond(j.If, ctx) {
				continue
			}
			done[id] = r.job(id, j, name)
			ran[id] = done[id]
		}
		if !progressed {
			r.t.Fatal("jobs with circular needs")
		}
	}
	return ran
}

// job runs one job's steps in a fresh workspace.
func (r *runner) job(id string, j *job, event string) *jobRun {
	t := r.t
	t.Helper()
	if err := os.RemoveAll(r.workspace); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.workspace, 0o755); err != nil {
		t.Fatal(err)
	}
	jr := &jobRun{outputs: map[string]string{}, steps: map[string]map[string]string{}}
	ctx := map[string]string{"github.event_name": event}
	env := map[string]string{}
	for k, v := range r.wf.Env {
		env[k] = r.expand(v, ctx)
	}
	for k, v := range j.Env {
		env[k] = r.expand(v, ctx)
	}
	runnerDir := t.TempDir()
	summary := filepath.Join(runnerDir, "summary.md")
	for i, s := range j.Steps {
		label := fmt.Sprintf("%s/%s step %d %q", event, id, i+1, s.Name+s.Uses)
		if !r.cond(s.If, ctx) {
			continue
		}
		switch {
		case s.Uses != "":
			r.uses(label, s, env)
		case strings.Contains(s.Run, "go install"):
			if !strings.Contains(s.Run, "go install \"github.com/iotplan/iotplan/cmd/iotplan@") {
				t.Errorf("%s installs something other than github.com/iotplan/iotplan/cmd/iotplan: %q", label, s.Run)
			}
			jr.skipped = append(jr.skipped, s.Name) // the binary built for the test is on PATH
		case strings.Contains(s.Run, "gh issue"):
			jr.skipped = append(jr.skipped, s.Name) // the GitHub CLI needs GitHub
		default:
			out := filepath.Join(runnerDir, fmt.Sprintf("output-%d", i))
			if err := os.WriteFile(out, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			stepEnv := map[string]string{"GITHUB_OUTPUT": out, "GITHUB_STEP_SUMMARY": summary, "GITHUB_WORKSPACE": r.workspace,
				"GITHUB_EVENT_NAME": event, "GITHUB_ACTIONS": "true", "CI": "true"}
			for k, v := range env {
				stepEnv[k] = v
			}
			for k, v := range s.Env {
				stepEnv[k] = r.expand(v, ctx)
			}
			r.bash(label, r.expand(s.Run, ctx), stepEnv)
			outputs := readOutputs(t, out)
			if s.ID != "" {
				jr.steps[s.ID] = outputs
				for k, v := range outputs {
					ctx["steps."+s.ID+".outputs."+k] = v
				}
			}
		}
	}
	for k, v := range j.Outputs {
		jr.outputs[k] = r.expand(v, ctx)
	}
	if b, err := os.ReadFile(summary); err == nil {
		jr.summary = string(b)
	}
	return jr
}

// uses plays the actions the recipe uses.
func (r *runner) uses(label string, s step, env map[string]string) {
	t := r.t
	action, _, _ := strings.Cut(s.Uses, "@")
	switch action {
	case "actions/checkout":
		// The repository's checkout: here, the configuration the recipe names, from this
		// repository.
		config := env["CONFIG"]
		if config == "" || !filepath.IsLocal(config) {
			t.Fatalf("%s: CONFIG=%q is not a directory of this repository", label, config)
		}
		copyDir(t, filepath.Join("..", "..", config), filepath.Join(r.workspace, config))
	case "actions/setup-go":
	case "actions/upload-artifact":
		b, err := os.ReadFile(filepath.Join(r.workspace, s.With["path"]))
		if err != nil {
			t.Fatalf("%s: %v", label, err)
		}
		r.artifacts[s.With["name"]] = map[string][]byte{filepath.Base(s.With["path"]): b}
	case "actions/download-artifact":
		files, ok := r.artifacts[s.With["name"]]
		if !ok {
			t.Fatalf("%s: no artifact %q uploaded in this run", label, s.With["name"])
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(r.workspace, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	default:
		t.Fatalf("%s: the test does not know the action %s", label, s.Uses)
	}
}

// bash runs a step's script as GitHub's 'shell: bash' does, failing the test when it fails.
func (r *runner) bash(label, script string, env map[string]string) {
	t := r.t
	t.Helper()
	f := filepath.Join(t.TempDir(), "step.sh")
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-eo", "pipefail", f)
	cmd.Dir = r.workspace
	cmd.Env = append([]string{"PATH=" + r.bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, r.hubEnv...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("%s:\n%s", label, out.String())
	if err != nil {
		t.Fatalf("%s failed: %v\n%s", label, err, out.String())
	}
}

func readOutputs(t *testing.T, path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// markdownTable matches the header separator of a Markdown table.
var markdownTable = regexp.MustCompile(`(?m)^\|\s*:?-{3,}`)

// TestGitHubWorkflow runs github/iotplan.yml's jobs for each event it handles. The "real"
// hub is a local hub in this process, reached as Azure would be: by IOTHUB_CONNECTION_STRING
// (the secret), trusted through SSL_CERT_FILE. A pull request checks and plans; the push
// that merges it plans again and applies that plan; the pull request's plan is then stale and
// refused; the daily check finds no drift, and then finds the drift a device's change made.
func TestGitHubWorkflow(t *testing.T) {
	bin := buildIotplan(t)
	var wf workflow
	loadYAML(t, filepath.Join("github", "iotplan.yml"), &wf)
	h, client, _ := hubtest.StartAudited(t, "")
	r := &runner{t: t, wf: &wf, bin: bin, workspace: filepath.Join(t.TempDir(), "work"),
		exprs: map[string]string{
			"secrets.IOTHUB_CONNECTION_STRING": h.ServiceConnectionString(),
			// The local hub is not throttled: S3 × 10 keeps iotplan's pacing out of the way.
			"vars.IOTPLAN_HUB_TIER": "S3", "vars.IOTPLAN_HUB_UNITS": "10",
			"github.token": "test-token", "github.ref": "refs/heads/main",
		},
		hubEnv:    []string{"SSL_CERT_FILE=" + h.CAFile()},
		artifacts: map[string]map[string][]byte{},
	}
	jobsOf := func(runs map[string]*jobRun) []string {
		return slices.Sorted(func(yield func(string) bool) {
			for id := range runs {
				if !yield(id) {
					return
				}
			}
		})
	}

	// A pull request: the local-hub check passes (its second plan exits 0); the plan against
	// the hub has changes (exit 2), posted as a Markdown table and kept as an artifact.
	pr := r.event("pull_request")
	if got := jobsOf(pr); !slices.Equal(got, []string{"check", "plan"}) {
		t.Fatalf("pull_request ran %v, want [check plan]", got)
	}
	if got := pr["plan"].outputs["changes"]; got != "true" {
		t.Errorf("the pull request's plan: changes=%q, want true (exit 2)", got)
	}
	if s := pr["plan"].summary; !markdownTable.MatchString(s) || !strings.Contains(s, "twin.floor") {
		t.Errorf("the pull request's summary is not the plan as a Markdown table:\n%s", s)
	}
	prPlan := r.artifacts["iotplan-plan"]["plan.bin"]
	if len(prPlan) == 0 {
		t.Fatal("no plan artifact")
	}

	// The merge: plan and apply that plan.
	push := r.event("push")
	if got := jobsOf(push); !slices.Equal(got, []string{"apply", "plan"}) {
		t.Fatalf("push ran %v, want [apply plan]", got)
	}
	twin, err := client.GetTwin(context.Background(), "door-00000")
	if err != nil {
		t.Fatal(err)
	}
	if desired := twin["properties"].(map[string]any)["desired"].(map[string]any); desired["floor"] == nil {
		t.Errorf("the apply did not set desired.floor on door-00000: %v", desired)
	}

	// The pull request's plan was made before that apply: it is refused, changing nothing.
	stale := filepath.Join(t.TempDir(), "plan.bin")
	if err := os.WriteFile(stale, prPlan, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "iotplan"), "apply", "-input=false", stale)
	cmd.Env = append(os.Environ(), "IOTHUB_CONNECTION_STRING="+h.ServiceConnectionString(), "SSL_CERT_FILE="+h.CAFile(),
		"IOTPLAN_HUB_TIER=S3", "IOTPLAN_HUB_UNITS=10", "CI=true")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(string(out), "moved since it was made") {
		t.Errorf("applying the stale plan: %v (want exit 1, refused as stale)\n%s", err, out)
	}

	// The daily check: no drift (exit 0), no issue.
	day := r.event("schedule")
	if got := jobsOf(day); !slices.Equal(got, []string{"drift"}) {
		t.Fatalf("schedule ran %v, want [drift]", got)
	}
	if got := day["drift"].steps["drift"]["drift"]; got != "false" {
		t.Errorf("drift right after the apply: drift=%q, want false (exit 0)", got)
	}
	if slices.Contains(day["drift"].skipped, "Open an issue") {
		t.Error("an issue would be opened without drift")
	}

	// Someone changes a door by hand: the next check finds it (exit 2) and would open an issue.
	patch := hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 99}}}
	if _, err := client.UpdateTwin(context.Background(), "door-00000", patch, ""); err != nil {
		t.Fatal(err)
	}
	day = r.event("schedule")
	if got := day["drift"].steps["drift"]["drift"]; got != "true" {
		t.Errorf("drift after a change by hand: drift=%q, want true (exit 2)", got)
	}
	if !slices.Contains(day["drift"].skipped, "Open an issue") {
		t.Error("drift found, but the issue step would not run")
	}
	if s := day["drift"].summary; !markdownTable.MatchString(s) {
		t.Errorf("the drift summary is not a Markdown table:\n%s", s)
	}
}

// iotplanLine matches a line of a script that runs iotplan.
var iotplanLine = regexp.MustCompile(`(?m)^\s*(?:- |run: |bash: )?(iotplan .*)$`)

// TestRecipesParse checks every iotplan command line of every recipe against the CLI: each
// runs with --help appended, so a renamed command or flag fails (cobra parses the flags
// before it shows help) without touching a hub.
func TestRecipesParse(t *testing.T) {
	bin := buildIotplan(t)
	for _, file := range []string{filepath.Join("github", "iotplan.yml"), filepath.Join("azure", "azure-pipelines.yml"), filepath.Join("gitlab", ".gitlab-ci.yml")} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		lines := iotplanLine.FindAllStringSubmatch(string(b), -1)
		if len(lines) < 6 {
			t.Errorf("%s: only %d iotplan commands", file, len(lines))
		}
		for _, m := range lines {
			line := m[1]
			script := `iotplan() { command iotplan "$@" --help > /dev/null; }` + "\n" + line + "\n"
			cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script)
			cmd.Dir = t.TempDir()
			cmd.Env = []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
				"CONFIG=cfg", "GITHUB_STEP_SUMMARY=/dev/null", "GITHUB_OUTPUT=/dev/null", "BUILD_ARTIFACTSTAGINGDIRECTORY=" + os.TempDir()}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s: %s: %v\n%s", file, line, err, out)
			}
		}
	}
}
