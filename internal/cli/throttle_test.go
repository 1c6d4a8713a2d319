package cli

import (
	"bufio"
	"context"
	"fmt"
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/tier"
)

// Throttled end-to-end runs (hub-throttle). `iotplan apply` against a local hub started with
// Tier "S1": planning's queries exceed S1's 20 queries/min burst and are answered 429, the
// client waits (Retry-After) and retries; the update job runs at S1's 10 job device
// operations/s. The run must finish with zero failed calls and devices, and report its waits.
//
//	go test ./internal/cli -run TestApplyThrottledS1                      # 60 devices, ≈ 6 s job + ≈ 15 s planning
//	IOTPLAN_LONG_TESTS=1 go test ./internal/cli -run TestApplyThrottledS1Long -timeout 30m -v
//	                                                                      # 5,000 devices, ≈ 500 s job

func TestApplyThrottledS1(t *testing.T) { throttledApply(t, 60) }

// TestPlanConvergedS1WithinQuota: a converged configuration of 20 twin resources plans on an S1
// hub in 20 queries — one minute of its quota — without a single 429, because the client told
// the tier (-hub-tier S1) paces itself to it (≈ 50 s: 3 at once, then one every 3 s).
func TestPlanConvergedS1WithinQuota(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var fleet, cfg strings.Builder
	fleet.WriteString("group \"doors\" {\n  count = 200\n  id = \"door-%05d\"\n  tags = { site = format(\"s%d\", index % 20) }\n  desired = { floor = 3 }\n  reported_echo_delay = \"off\"\n}\n")
	for i := range 20 {
		fmt.Fprintf(&cfg, "twin \"site%d\" {\n  target  = \"tags.site = 's%d'\"\n  desired = { floor = 3 }\n}\n", i, i)
	}
	fleetFile, cfgFile := filepath.Join(dir, "fleet.hcl"), filepath.Join(dir, "sites.hcl")
	if err := os.WriteFile(fleetFile, []byte(fleet.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	h, _, _ := hubtest.StartAuditedWith(t, hub.Options{Tier: "S1"}, fleet.String())
	data := registerHub(t, h)
	start := time.Now()
	r := iotplan(t, "plan", "-dev", "-data", data, "-hub-tier", "S1", "-detailed-exitcode", cfgFile)
	t.Logf("plan of 20 converged resources at S1 × 1 unit in %v:\n%s%s", time.Since(start).Round(time.Millisecond), r.out, r.err)
	// 20 queries (and one read of the hub's ADM configurations, another quota).
	if r.code != 0 || !strings.Contains(r.out, "No changes.") || !strings.Contains(r.out, "Planning used 21 hub calls (configuration.list: 1, query: 20).") ||
		strings.Contains(r.out, "429") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	if st := h.Throttle().Stats()[tier.Queries]; st.Refused != 0 || st.Served != 20 {
		t.Errorf("the hub's query throttle: %+v", st)
	}
}

func TestApplyThrottledS1Long(t *testing.T) {
	if os.Getenv("IOTPLAN_LONG_TESTS") != "1" {
		t.Skip("5,000 devices at S1's 10 job device operations/s take ≈ 500 s: set IOTPLAN_LONG_TESTS=1 (and -timeout 30m)")
	}
	throttledApply(t, 5000)
}

// throttledApply applies three desired keys to n devices on an S1 hub.
func throttledApply(t *testing.T, n int) {
	dir := t.TempDir()
	fleet := filepath.Join(dir, "fleet.hcl")
	if err := os.WriteFile(fleet, []byte(fmt.Sprintf(`
group "fleet" {
  count   = %d
  id      = "dev-%%05d"
  tags    = { site = "hq" }
  desired = { floor = 1 }
  reported_echo_delay = "off"
}
`, n)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The client is not told the tier (the endpoint file has none): it does not pace itself,
	// so the hub throttles it and it must retry (TestPlanConvergedS1WithinQuota: told, it paces).
	src, err := os.ReadFile(fleet)
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ := hubtest.StartAuditedWith(t, hub.Options{Tier: "S1"}, string(src))
	data := registerHub(t, h)
	cfg := filepath.Join(dir, "fleet-config.hcl")
	if err := os.WriteFile(cfg, []byte(`
twin "fleet" {
  target  = "tags.site = 'hq'"
  desired = {
    floor    = 2
    building = "43"
    mode     = "eco"
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	var out, errb strings.Builder
	runCtx, stop := context.WithTimeout(context.Background(), time.Duration(n)*time.Second/5+5*time.Minute)
	defer stop()
	code := run(runCtx, []string{"apply", "-dev", "-data", data, "-auto-approve", cfg}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb, Width: 100})
	took := time.Since(start)
	t.Logf("apply over %d devices at S1: exit %d in %v\n%s", n, code, took.Round(time.Millisecond), out.String())
	if code != 0 {
		t.Fatalf("apply exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}

	// Zero failed devices: the job completed on every one of them.
	c, err := hubclient.New(h.ServiceConnectionString(), hubclient.WithRootCAs(h.RootCAs()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	jobs, err := c.ListJobs(context.Background(), hubapi.JobTypeUpdateTwin, "")
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs: %v %v", jobs, err)
	}
	j := jobs[0]
	if st := j.DeviceJobStatistics; j.Status != hubapi.JobStatusCompleted || st == nil || st.DeviceCount != n || st.SucceededCount != n || st.FailedCount != 0 {
		t.Fatalf("job %s %s %+v, want completed on %d devices", j.JobID, j.Status, j.DeviceJobStatistics, n)
	}
	if !strings.Contains(out.String(), fmt.Sprintf("Apply complete! 1 twin update on %s devices.", commas(n))) {
		t.Errorf("no success line in\n%s", out.String())
	}
	// S1 runs job device operations at 10/s: the job cannot have been faster.
	if j.StartTime == nil || j.EndTime == nil {
		t.Fatalf("job without start/end time: %+v", j)
	}
	jobTook := j.EndTime.Sub(*j.StartTime)
	if min := time.Duration(n-1) * time.Second / 10; jobTook < min-100*time.Millisecond {
		t.Errorf("the job over %d devices took %v at S1; 10 device operations/s need ≥ %v", n, jobTook, min)
	}

	// Zero failed calls: every 429 the hub sent was waited out and retried, and the run
	// reported each one. Planning's 8 queries exceed S1's query burst (3), so there are some.
	stats := h.Throttle().Stats()
	refused := int64(0)
	for _, s := range stats {
		refused += s.Refused
	}
	m := regexp.MustCompile(`Planning waited ([0-9.]+)s on hub throttling \((\d+) calls? answered 429\)\.`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("the plan does not report its waits:\n%s", out.String())
	}
	planWait, _ := strconv.ParseFloat(m[1], 64)
	planThrottled, _ := strconv.Atoi(m[2])
	applyThrottled := 0
	if m := regexp.MustCompile(`Apply waited [0-9.ms]+ on hub throttling \((\d+) calls? answered 429\)\.`).FindStringSubmatch(out.String()); m != nil {
		applyThrottled, _ = strconv.Atoi(m[1])
	}
	if refused == 0 || int64(planThrottled+applyThrottled) != refused {
		t.Errorf("the hub refused %d requests (%+v); the run reported %d + %d", refused, stats[tier.Queries], planThrottled, applyThrottled)
	}
	// Each refused query waited its Retry-After (S1: one query per 3 s) before the retry.
	if planWait < float64(planThrottled)*2.5 {
		t.Errorf("planning waited %.1fs for %d throttled queries; Retry-After asks ≈ 3 s each", planWait, planThrottled)
	}
	t.Logf("hub throttle: queries %+v; jobs ops %+v; job %v for %d devices; apply %v",
		stats[tier.Queries], stats[tier.JobsOps], jobTook.Round(time.Millisecond), n, took.Round(time.Millisecond))
}

func commas(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// `iotplan dev --tier S1 --policies` prints its throttles and every policy's connection string,
// and each printed string works with exactly its policy's rights.
func TestDevTierAndPolicies(t *testing.T) {
	dir := t.TempDir()
	var out, errb lockedbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--data", dir, "--https-port", "0", "--mqtt-port", "0", "--host", "localhost",
			"--tier", "S1", "--units", "2", "--policies"}, Streams{In: strings.NewReader(""), Out: &out, Err: &errb, Width: 100})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("iotplan dev did not stop")
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl+C") {
		if time.Now().After(deadline) {
			t.Fatalf("iotplan dev did not start:\n%s\n%s", out.String(), errb.String())
		}
		select {
		case code := <-done:
			t.Fatalf("iotplan dev exited %d:\n%s\n%s", code, out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	text := out.String()
	if !strings.Contains(text, "Throttling: S1, 2 units: 40 queries/min, 10 job device ops/s, 50 twin updates/s, 1 concurrent job(s)") {
		t.Errorf("no throttling line:\n%s", text)
	}
	// Every default policy with its rights and connection string.
	css := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	var policy string
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if m := regexp.MustCompile(`^(\w+) \(([^)]*)\):$`).FindStringSubmatch(line); m != nil {
			policy = m[1]
			continue
		}
		if policy != "" && strings.HasPrefix(line, "HostName=") {
			css[policy] = line
			policy = ""
		}
	}
	for _, p := range []string{"iothubowner", "service", "device", "registryRead", "registryReadWrite"} {
		if !strings.Contains(css[p], ";SharedAccessKeyName="+p+";SharedAccessKey=") {
			t.Errorf("policy %s: connection string %q", p, css[p])
		}
	}
	e, ok := readRunningEndpoint(dir)
	if !ok {
		t.Fatal("no endpoint file")
	}
	pool, err := loadCAFile(e.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	// registryRead may read identities but not twins; service the reverse.
	for _, c := range []struct {
		policy           string
		identity, twinOK bool
	}{{"registryRead", true, false}, {"service", false, true}, {"iothubowner", true, true}} {
		cl, err := hubclient.New(css[c.policy], hubclient.WithRootCAs(pool), hubclient.WithRetry(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.DeviceExists(context.Background(), "myDeviceId")
		if (err == nil) != c.identity || (err != nil && !hubclient.IsCode(err, 401002)) {
			t.Errorf("%s: device.get: %v", c.policy, err)
		}
		_, err = cl.GetTwin(context.Background(), "myDeviceId")
		if (err == nil) != c.twinOK || (err != nil && !hubclient.IsCode(err, 401002)) {
			t.Errorf("%s: twin.get: %v", c.policy, err)
		}
		cl.Close()
	}
}

func TestDevTierFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"dev", "--units", "3"}, "--units needs --tier"},
		{[]string{"dev", "--tier", "S9"}, `unknown IoT Hub tier "S9"`},
		{[]string{"dev", "--tier", "S3", "--units", "11"}, "units must be from 1 to 10 on S3"},
		{[]string{"dev", "--tier", "F1", "--units", "2"}, "exactly 1 unit"},
	} {
		r := iotplan(t, append(c.args, "--data", t.TempDir())...)
		if r.code == 0 || !strings.Contains(r.err, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, r.code, r.err, c.want)
		}
	}
}
