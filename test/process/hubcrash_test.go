package process

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// hubProc is one 'iotplan dev' process: the local hub itself, which these tests kill.
type hubProc struct {
	cmd  *exec.Cmd
	out  *lockedbuf.Buffer
	done chan error
	c    *hubclient.Client
}

// crashFleet: n doors answering lockDoor after 20–60 ms, so a method job at S1 (10 device
// operations a second) over them runs long enough to be killed half-way.
func crashFleet(n int) string {
	return fmt.Sprintf(`
group "doors" {
  count               = %d
  id                  = "door-%%04d"
  tags                = { site = "hq" }
  reported_echo_delay = "off"
  method "lockDoor" {
    status  = 200
    latency = "20ms..60ms"
  }
}
`, n)
}

// writeCrashFleet writes crashFleet(n) to a file and returns its path.
func writeCrashFleet(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fleet.hcl")
	if err := os.WriteFile(path, []byte(crashFleet(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitJobEnded polls a job until it reaches a final status (bounded: 3 minutes).
func waitJobEnded(t *testing.T, c *hubclient.Client, id string) hubapi.JobResponse {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		job, err := c.GetJob(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if hubapi.JobEnded(job.Status) {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after 3 minutes", id, job.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startDev starts 'iotplan dev' on data (random ports) and returns once its endpoint file
// names a hub that answers.
func startDev(t *testing.T, data, fleet string) *hubProc {
	t.Helper()
	os.Remove(filepath.Join(data, "endpoint.json"))
	args := []string{"dev", "--data", data, "--https-port", "0", "--mqtt-port", "0", "--tier", "S1", "--units", "1"}
	if fleet != "" {
		args = append(args, "--fleet", fleet)
	}
	p := &hubProc{cmd: exec.Command(binary, args...), out: &lockedbuf.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.done; p.done <- nil })
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if c := devClient(data); c != nil {
			if _, err := c.ActiveJobs(context.Background()); err == nil {
				p.c = c
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("iotplan dev ended: %v\n%s", err, p.out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("iotplan dev did not start\n%s", p.out)
	return nil
}

// devClient is a client of the hub whose endpoint file is in data, nil while there is none.
func devClient(data string) *hubclient.Client {
	b, err := os.ReadFile(filepath.Join(data, "endpoint.json"))
	if err != nil {
		return nil
	}
	var e struct {
		ConnectionString string `json:"connectionString"`
		CAFile           string `json:"caFile"`
	}
	if json.Unmarshal(b, &e) != nil {
		return nil
	}
	pem, err := os.ReadFile(e.CAFile)
	if err != nil {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c, err := hubclient.New(e.ConnectionString, hubclient.WithRootCAs(pool))
	if err != nil {
		return nil
	}
	return c
}

// kill ends the hub with SIGKILL, as a crash does.
func (p *hubProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil
}

// TestHubKilledMidMethodJob kills the local hub with SIGKILL at random moments of a method
// job (IOTPLAN_CRASH_KILLS times, default 3), restarting it on the same data each time, and
// checks what a database would promise: the hub starts again; the job is never stuck running
// and ends completed; every device of the job has exactly one final row — succeeded, or
// failed JobInterrupted for a call the kill caught in flight (its row was stored running
// before the call, so it is not called again); and no device row stays pending or running.
func TestHubKilledMidMethodJob(t *testing.T) {
	kills := 3
	if s := os.Getenv("IOTPLAN_CRASH_KILLS"); s != "" {
		kills, _ = strconv.Atoi(s)
	}
	const devices = 300
	data := t.TempDir()
	p := startDev(t, data, writeCrashFleet(t, devices))
	ctx := context.Background()
	if _, err := p.c.CreateJob(ctx, hubapi.JobRequest{JobID: "crash-lock", Type: hubapi.JobTypeDeviceMethod,
		QueryCondition: "tags.site = 'hq'", MaxExecutionTimeInSeconds: 3600,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 10}}); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < kills; k++ {
		time.Sleep(time.Duration(500+rand.IntN(2500)) * time.Millisecond)
		p.kill(t)
		p = startDev(t, data, "")
	}
	job := waitJobEnded(t, p.c, "crash-lock")
	if job.Status != hubapi.JobStatusCompleted {
		t.Fatalf("after %d kills the job is %s (%s)", kills, job.Status, job.FailureReason)
	}
	rows, err := p.c.DeviceJobs(ctx, "crash-lock", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	byDevice := map[string]int{}
	interrupted := 0
	for _, r := range rows {
		byDevice[r.DeviceID]++
		switch {
		case r.Status == hubapi.DeviceJobCompleted:
		case r.Status == hubapi.DeviceJobFailed && r.Error != nil && r.Error.Code == "JobInterrupted":
			interrupted++
		default:
			t.Errorf("%s ended %s %+v", r.DeviceID, r.Status, r.Error)
		}
	}
	if len(byDevice) != devices || len(rows) != devices {
		t.Errorf("%d rows for %d devices, want one row for each of %d", len(rows), len(byDevice), devices)
	}
	if st := job.DeviceJobStatistics; st == nil || st.SucceededCount+st.FailedCount != devices || st.RunningCount+st.PendingCount != 0 {
		t.Errorf("statistics %+v", st)
	}
	t.Logf("%d kills: %d devices succeeded, %d interrupted in flight", kills, devices-interrupted, interrupted)
}

// TestHubKilledDuringWrites kills the local hub with SIGKILL while 8 clients patch twins over
// REST and a twin job runs, restarts it on the same data, and checks that every acknowledged
// write is there (a device holds the last value acknowledged for it, or the one in flight when
// the hub died — never an older one), and that the twin job resumes and reaches every device.
func TestHubKilledDuringWrites(t *testing.T) {
	const devices = 200
	data := t.TempDir()
	p := startDev(t, data, writeCrashFleet(t, devices))
	ctx := context.Background()
	if _, err := p.c.CreateJob(ctx, hubapi.JobRequest{JobID: "crash-floor", Type: hubapi.JobTypeUpdateTwin,
		QueryCondition: "tags.site = 'hq'", MaxExecutionTimeInSeconds: 3600,
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 7.0}}}}); err != nil {
		t.Fatal(err)
	}
	type progress struct{ acked, attempted int }
	var wg sync.WaitGroup
	results := make([]progress, 8)
	stop := make(chan struct{})
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("door-%04d", w)
			for n := 1; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				results[w].attempted = n
				patch := hubapi.TwinPatch{Tags: map[string]any{"counter": float64(n)}}
				if _, err := p.c.UpdateTwin(ctx, id, patch, "*"); err != nil {
					return // the hub died
				}
				results[w].acked = n
			}
		}()
	}
	time.Sleep(time.Duration(800+rand.IntN(1500)) * time.Millisecond)
	p.kill(t)
	close(stop)
	wg.Wait()
	p = startDev(t, data, "")
	for w, r := range results {
		tw, err := p.c.GetTwin(ctx, fmt.Sprintf("door-%04d", w))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := tw["tags"].(map[string]any)["counter"].(float64)
		if int(got) != r.acked && int(got) != r.attempted {
			t.Errorf("door-%04d: counter %v after the crash; %d writes were acknowledged, %d attempted", w, got, r.acked, r.attempted)
		}
	}
	if job := waitJobEnded(t, p.c, "crash-floor"); job.Status != hubapi.JobStatusCompleted || job.DeviceJobStatistics.SucceededCount != devices {
		t.Fatalf("twin job after the crash: %s %+v", job.Status, job.DeviceJobStatistics)
	}
	for _, id := range []string{"door-0000", "door-0199"} {
		tw, _ := p.c.GetTwin(ctx, id)
		if f := tw["properties"].(map[string]any)["desired"].(map[string]any)["floor"]; f != 7.0 {
			t.Errorf("%s floor %v after the resumed twin job", id, f)
		}
	}
}
