// Package process tests what only real processes show: two iotplan processes racing for a
// state's lock, and an apply interrupted mid-job by SIGINT or killed by SIGKILL, then run
// again. The iotplan binary is built once (go build) and run against a local hub started
// in-process on a random loopback port, which keeps running — with its jobs — while the
// iotplan processes come and go. The hubcrash tests kill the local hub itself ('iotplan dev')
// with SIGKILL during seeding, jobs and bursts of REST and MQTT writes, and restart it on the
// same data (20 kills by default; IOTPLAN_CRASH_KILLS=N for N in each of those tests). Linux
// only (signals, process groups).
package process

import (
	"context"
	"fmt"
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/cli"
	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/state"
)

var binary string

func TestMain(m *testing.M) {
	if runtime.GOOS != "linux" {
		fmt.Println("skipping: process tests need Linux")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "iotplan-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "iotplan")
	build := exec.Command("go", "build", "-o", binary, "github.com/iotplan/iotplan/cmd/iotplan")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building iotplan:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// doorsFleet: n doors that answer lockDoor, on site hq.
func doorsFleet(n int) string {
	return fmt.Sprintf(`
group "doors" {
  count = %d
  id    = "door-%%03d"
  tags  = { site = "hq" }
  reported_echo_delay = "off"
  method "lockDoor" {
    status = 200
  }
}
`, n)
}

// env is a local hub at S1 (10 job device operations a second, so a job over 40 devices takes
// about 4 s and can be interrupted half-way), registered as the running 'iotplan dev' of data.
type env struct {
	h      *hub.Hub
	c      *hubclient.Client
	data   string
	config string
}

func newEnv(t *testing.T, fleet, config string) *env {
	t.Helper()
	h, c, _ := hubtest.StartAuditedWith(t, hub.Options{Tier: "S1", Units: 10}, fleet)
	e := &env{h: h, c: c, data: t.TempDir()}
	if err := cli.WriteEndpoint(e.data, h.ServiceConnectionString(), h.CAFile(), os.Getpid()); err != nil {
		t.Fatal(err)
	}
	e.config = filepath.Join(t.TempDir(), "main.hcl")
	if err := os.WriteFile(e.config, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// proc is one iotplan process.
type proc struct {
	cmd      *exec.Cmd
	out, err *lockedbuf.Buffer
	done     chan error
}

func (e *env) start(t *testing.T, args ...string) *proc {
	t.Helper()
	args = append(append([]string(nil), args...), "-dev", "-data", e.data, "-hub-tier", "S1", "-hub-units", "10", e.config)
	p := &proc{cmd: exec.Command(binary, args...), out: &lockedbuf.Buffer{}, err: &lockedbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
	p.cmd.Env = append(os.Environ(), "NO_COLOR=1")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits (bounded) for the process to end and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		p.done <- nil // for the cleanup
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(2 * time.Minute):
		t.Fatalf("iotplan did not end\nstdout:\n%s\nstderr:\n%s", p.out, p.err)
	}
	return -1
}

func (e *env) run(t *testing.T, args ...string) (int, *proc) {
	t.Helper()
	p := e.start(t, args...)
	return p.wait(t), p
}

// waitForMethodJob waits until a method job is running with some devices done and some not.
func (e *env) waitForMethodJob(t *testing.T, p *proc) hubapi.JobResponse {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		jobs, err := e.c.ListJobs(context.Background(), hubapi.JobTypeDeviceMethod, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if st := j.DeviceJobStatistics; j.Status == hubapi.JobStatusRunning && st != nil && st.SucceededCount > 0 && st.PendingCount > 0 {
				return j
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no method job half-way\nstdout:\n%s\nstderr:\n%s", p.out, p.err)
	return hubapi.JobResponse{}
}

// lockDoorCalls counts, per device, how often lockDoor reached it.
func (e *env) lockDoorCalls(n int) map[int]int {
	calls := map[int]int{}
	for i := range n {
		calls[e.h.Sim().Calls(fmt.Sprintf("door-%03d", i), "lockDoor")]++
	}
	return calls
}

const lockConfig = `method "lock" {
  target = "tags.site = 'hq'"
  method = "lockDoor"
}
`

// TestKillMidJobThenApplyResumes: kill -9 of apply while its method job runs leaves the lock
// and the apply in the state; the next apply on this machine takes the lock over (the holder
// is gone), reattaches to the running job and records the apply: every door ran lockDoor
// exactly once.
func TestKillMidJobThenApplyResumes(t *testing.T) {
	t.Parallel()
	const n = 40
	e := newEnv(t, doorsFleet(n), lockConfig)
	p := e.start(t, "apply", "-auto-approve")
	e.waitForMethodJob(t, p)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t)
	code, again := e.run(t, "apply", "-auto-approve")
	if code != 0 || !strings.Contains(again.err.String(), "Took over the state lock") || !strings.Contains(again.out.String(), "Resuming the apply") {
		t.Fatalf("apply after kill -9: exit %d\nstdout:\n%s\nstderr:\n%s", code, again.out, again.err)
	}
	if calls := e.lockDoorCalls(n); calls[1] != n {
		t.Fatalf("lockDoor calls per device (calls → devices): %v; want every one of %d devices once", calls, n)
	}
	e.checkFinished(t)
}

// TestInterruptMidJobThenApplyResumes: the first Ctrl-C stops waiting, releases the lock and
// says how to resume; the next apply reattaches and no door runs lockDoor twice.
func TestInterruptMidJobThenApplyResumes(t *testing.T) {
	t.Parallel()
	const n = 40
	e := newEnv(t, doorsFleet(n), lockConfig)
	p := e.start(t, "apply", "-auto-approve")
	job := e.waitForMethodJob(t, p)
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t); code != 1 || !strings.Contains(p.err.String(), "Run 'iotplan apply' to resume") || !strings.Contains(p.err.String(), job.JobID) {
		t.Fatalf("interrupted apply: exit %d\nstderr:\n%s", code, p.err)
	}
	if out := p.out.String(); !strings.Contains(out, "Apply interrupted:") || strings.Contains(out, "complete") || strings.Contains(out, "0 of") {
		t.Fatalf("interrupted apply's summary:\n%s", out)
	}
	st, lock, err := mustStore(t, e).ReadWithLock(context.Background())
	if err != nil || lock != nil || st.Apply == nil {
		t.Fatalf("after Ctrl-C: lock %v, apply record %v, %v", lock, st.Apply, err)
	}
	code, again := e.run(t, "apply", "-auto-approve")
	if code != 0 || !strings.Contains(again.out.String(), "Resuming the apply") {
		t.Fatalf("apply after Ctrl-C: exit %d\nstdout:\n%s\nstderr:\n%s", code, again.out, again.err)
	}
	if calls := e.lockDoorCalls(n); calls[1] != n {
		t.Fatalf("lockDoor calls per device: %v; want every one of %d devices once", calls, n)
	}
	e.checkFinished(t)
}

// TestSecondInterruptCancels: a second Ctrl-C within the window cancels the apply's jobs and
// forgets the apply: no door runs lockDoor twice, and the next apply plans afresh.
func TestSecondInterruptCancels(t *testing.T) {
	t.Parallel()
	const n = 40
	e := newEnv(t, doorsFleet(n), lockConfig)
	p := e.start(t, "apply", "-auto-approve")
	job := e.waitForMethodJob(t, p)
	p.cmd.Process.Signal(os.Interrupt)
	waitFor(t, p, "Press Ctrl-C again")
	p.cmd.Process.Signal(os.Interrupt)
	if code := p.wait(t); code != 1 || !strings.Contains(p.err.String(), "Cancelled job "+job.JobID) {
		t.Fatalf("second Ctrl-C: exit %d\nstderr:\n%s", code, p.err)
	}
	got, err := e.c.GetJob(context.Background(), job.JobID)
	if err != nil || got.Status != hubapi.JobStatusCancelled {
		t.Fatalf("job after the second Ctrl-C: %s %v", got.Status, err)
	}
	for calls := range e.lockDoorCalls(n) {
		if calls > 1 {
			t.Fatalf("a door ran lockDoor %d times", calls)
		}
	}
	e.checkFinished(t)
}

// TestTwoProcessesRaceForTheLock: two applies started together with different values: exactly
// one takes the lock and writes, the other is refused saying who holds it; the fleet is never
// left mixed. Repeated, so that the race is really run.
func TestTwoProcessesRaceForTheLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, doorsFleet(10), "")
	configs := []string{filepath.Join(t.TempDir(), "five.hcl"), filepath.Join(t.TempDir(), "six.hcl")}
	for i, f := range []int{5, 6} {
		os.WriteFile(configs[i], []byte(fmt.Sprintf("twin \"floors\" {\n  target  = \"tags.site = 'hq'\"\n  desired = { floor = %d }\n}\n", f)), 0o644)
	}
	// Rounds until two of them really raced (one refused by the lock), at most ten: two
	// processes started together nearly always contend, but a round where one finished before
	// the other asked proves nothing about the lock.
	raced := 0
	for round := 0; round < 10 && raced < 2; round++ {
		procs := make([]*proc, 2)
		for i := range 2 {
			e.config = configs[(i+round)%2]
			procs[i] = e.start(t, "apply", "-auto-approve")
		}
		won, refused := 0, 0
		for _, p := range procs {
			switch code := p.wait(t); {
			case code == 0:
				won++
			case strings.Contains(p.err.String(), "is locked by"):
				refused++
			default:
				t.Fatalf("round %d: exit %d\nstderr:\n%s", round, code, p.err)
			}
		}
		t.Logf("round %d: %d applied, %d refused by the lock", round, won, refused)
		if won < 1 {
			t.Fatalf("round %d: %d won, %d refused", round, won, refused)
		}
		raced += refused
		floors := map[any]int{}
		rows, err := e.c.Query(context.Background(), "SELECT properties.desired.floor AS f FROM devices WHERE tags.site = 'hq'")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			floors[r["f"]]++
		}
		if len(floors) != 1 {
			t.Fatalf("round %d: the fleet is mixed: %v", round, floors)
		}
	}
	if raced == 0 {
		t.Fatal("in ten rounds the two processes never contended for the lock")
	}
}

func mustStore(t *testing.T, e *env) *state.Store {
	t.Helper()
	s, err := state.Open(e.c, state.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkFinished: no lock and no unfinished apply are left in the state.
func (e *env) checkFinished(t *testing.T) {
	t.Helper()
	st, lock, err := mustStore(t, e).ReadWithLock(context.Background())
	if err != nil || lock != nil || st.Apply != nil {
		t.Fatalf("state: lock %v, unfinished apply %v, %v", lock, st.Apply, err)
	}
}

// waitFor waits (bounded) until the process has written text to its standard error.
func waitFor(t *testing.T, p *proc, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.err.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q\nstderr:\n%s", text, p.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
