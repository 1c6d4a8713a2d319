package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// iotplanOn runs the CLI in-process with a stderr that stands for a terminal (ErrTTY, as
// SystemStreams sets it for a real one) without being one; ci says a CI variable is set.
func iotplanOn(t *testing.T, ci bool, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, args, Streams{In: strings.NewReader(""), Out: &out, Err: &errb, ErrTTY: true, CI: ci, Width: 100})
	return result{code, out.String(), errb.String()}
}

// cursorUp is what mpb writes to redraw its bars in place.
const cursorUp = "A\x1b[J"

// On a terminal, apply draws its jobs as progress bars on stderr and leaves each job's line
// above them; stdout (the plan and the result) is what it is without a terminal.
func TestApplyProgressBarsOnTerminal(t *testing.T) {
	_, data := testHub(t, "")
	example := filepath.Join("..", "..", "examples", "lockdoor.hcl")
	r := iotplanOn(t, false, "apply", "-dev", "-data", data, "-auto-approve", "-no-color", example)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%q", r.code, r.out, r.err)
	}
	for _, want := range []string{"\x1b[", "twin.door_location: done after", "method.lock_door: done after"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%q", want, r.err)
		}
	}
	if strings.Contains(r.err, "\r") {
		t.Errorf("stderr has carriage returns (the line-rewriting view), want bars:\n%q", r.err)
	}
	if !strings.Contains(r.out, "Apply complete!") || strings.Contains(r.out, "\x1b[") {
		t.Errorf("stdout:\n%q", r.out)
	}
}

// In CI (the CI variable set), apply writes plain lines even on a terminal, as it does
// without one.
func TestApplyProgressPlainInCI(t *testing.T) {
	_, data := testHub(t, "")
	example := filepath.Join("..", "..", "examples", "lockdoor.hcl")
	r := iotplanOn(t, true, "apply", "-dev", "-data", data, "-auto-approve", "-no-color", example)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	if strings.Contains(r.err, "\x1b[") || strings.Contains(r.err, "\r") {
		t.Errorf("control sequences on stderr in CI:\n%q", r.err)
	}
	for _, want := range []string{"twin.door_location: updating twins on 1 device (job ", "twin.door_location: done after",
		"method.lock_door: invoking lockDoor on 1 device (job ", "method.lock_door: done after"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
}

// -json on a terminal writes events only, and no bar.
func TestApplyJSONOnTerminalHasNoBars(t *testing.T) {
	_, data := testHub(t, "")
	example := filepath.Join("..", "..", "examples", "lockdoor.hcl")
	r := iotplanOn(t, false, "apply", "-dev", "-data", data, "-auto-approve", "-json", example)
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	if strings.Contains(r.err, cursorUp) || strings.Contains(r.out, cursorUp) {
		t.Errorf("bars drawn with -json:\nstdout:\n%q\nstderr:\n%q", r.out, r.err)
	}
	types := map[string]int{}
	for line := range strings.SplitSeq(strings.TrimSpace(r.out), "\n") {
		var ev struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not a JSON event: %q", line)
		}
		types[ev.Type]++
	}
	for _, want := range []string{"job_created", "job_progress", "job_completed", "apply_summary"} {
		if types[want] == 0 {
			t.Errorf("no %s event: %v", want, types)
		}
	}
}

func TestInCI(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"CI": "true"}, true},       // GitHub Actions, GitLab
		{map[string]string{"CI": "1"}, true},          // others
		{map[string]string{"CI": "false"}, false},     // said explicitly
		{map[string]string{"TF_BUILD": "True"}, true}, // Azure Pipelines
		{map[string]string{"CI": "0", "TF_BUILD": "True"}, true},
	} {
		if got := inCI(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("inCI(%v) = %v, want %v", c.env, got, c.want)
		}
	}
}
