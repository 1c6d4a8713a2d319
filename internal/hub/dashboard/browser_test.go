package dashboard_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iotplan/iotplan/internal/cli"
	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/tier"
)

// The browser tests drive Debian's chromium, headless, through chromedp
// (https://pkg.go.dev/github.com/chromedp/chromedp) against a hub started in-process. Without
// a chromium binary they are skipped, unless CI is set: CI installs it (.ci/run), so there
// a missing browser is a failure, not a skip.
//
// IOTPLAN_DASHBOARD_SCREENSHOTS=DIR also saves a PNG of each page into DIR (docs/dashboard
// for docs/dashboard.md): go test ./internal/hub/dashboard -run TestDashboardInABrowser
// with IOTPLAN_DASHBOARD_SCREENSHOTS=$PWD/docs/dashboard.

const envScreenshots = "IOTPLAN_DASHBOARD_SCREENSHOTS"

// chromium finds the browser, or skips (or, under CI, fails) the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("no chromium binary on PATH, and CI is set: .ci/run installs Debian's chromium (apt-get install -y chromium)")
	}
	t.Skip("no chromium binary on PATH: the dashboard's browser tests need one (Debian: apt-get install -y chromium); CI runs them")
	return ""
}

// browser starts a headless chromium for the test. The hub's certificate is signed by its
// own CA, which the browser does not know: certificate errors are ignored (the page is
// still a secure context, so the dashboard's Secure cookie works).
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The first run starts the browser; it must not have a timeout of its own (chromedp.Run).
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	return ctx
}

// run runs actions with a time bound.
func run(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and returns its value as text.
func eval(t *testing.T, ctx context.Context, expr string, opts ...chromedp.EvaluateOption) string {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[string](expr, opts...))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate in the page until it is true (bounded).
func waitFor(t *testing.T, ctx context.Context, d time.Duration, what, predicate string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, d+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(c, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d))); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 2000)`))
		t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// screenshot saves the page as DIR/name.png when IOTPLAN_DASHBOARD_SCREENSHOTS=DIR.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv(envScreenshots)
	if dir == "" {
		return
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The viewport (1280×900), not the whole page: a job's outcome list is 100 rows long.
	if err := chromedp.Do(c, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(c, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The dashboard in a real browser: refused without the token; the token URL lands on a clean
// /ui/ showing the fleet's device count; a query finds myDeviceId and shows its twin; a bad
// query shows its error at its position; the jobs `iotplan apply` starts appear and
// complete on the open page, without a reload; the activity page shows their calls.
func TestDashboardInABrowser(t *testing.T) {
	ctx := browser(t)
	h, svc := startHub(t, hub.Options{Tier: "S3"}, "")
	dash, err := url.Parse(h.DashboardURL())
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + dash.Host

	// Without the token: 403, and no dashboard.
	run(t, ctx, 20*time.Second, "open /ui/ without the token", chromedp.Navigate(base+"/ui/"))
	if body := eval(t, ctx, `document.body.innerText`); !strings.HasPrefix(body, "403 Forbidden") {
		t.Fatalf("/ui/ without the token shows %q", body)
	}
	if code := eval(t, ctx, `fetch("/ui/api/summary").then(r => String(r.status))`, chromedp.EvalAwaitPromise); code != "403" {
		t.Fatalf("the API without the token answers %s", code)
	}

	// The printed URL: the token becomes a cookie and leaves the address bar.
	start := time.Now()
	run(t, ctx, 20*time.Second, "open the printed URL", chromedp.Navigate(h.DashboardURL()))
	if loc := eval(t, ctx, `location.href`); loc != base+"/ui/" {
		t.Errorf("after the token exchange the page is at %q, want %q", loc, base+"/ui/")
	}
	if c := eval(t, ctx, `document.cookie`); c != "" {
		t.Errorf("page scripts can read cookies: %q", c)
	}
	waitFor(t, ctx, 20*time.Second, "the overview shows 301 devices", `document.getElementById("ov-devices").textContent === "301"`)
	waitFor(t, ctx, 20*time.Second, "the overview draws its bar chart", `document.querySelectorAll("#group-chart svg rect").length === 4`)
	t.Logf("overview loaded with its chart in %v", time.Since(start).Round(time.Millisecond))
	if tierText := eval(t, ctx, `document.getElementById("ov-tier").textContent`); tierText != "S3" {
		t.Errorf("tier card %q", tierText)
	}
	// Nothing below reloads the page: this marker would be gone.
	eval(t, ctx, `(window.__sameDocument = "yes")`)

	// Devices: a query finds myDeviceId; its twin shows desired and reported side by side.
	run(t, ctx, 20*time.Second, "run a query",
		chromedp.Evaluate[chromedp.Void](`location.hash = "#devices"`),
		chromedp.WaitVisible(chromedp.ID("query-text")),
		chromedp.SetValue(chromedp.ID("query-text"), "SELECT * FROM devices WHERE deviceId = 'myDeviceId' OR tags.building = '41'"),
		chromedp.Click(chromedp.ID("query-run")),
	)
	// Results come in pages of 100, ordered by device id: the doors of building 41 fill the
	// first page, myDeviceId is on the second.
	waitFor(t, ctx, 20*time.Second, "the first page of 100", `document.querySelectorAll("#query-results tbody tr").length === 100`)
	if next := eval(t, ctx, `String(document.getElementById("query-next").disabled)`); next != "false" {
		t.Fatal("no next page for a query of more than 100 devices")
	}
	run(t, ctx, 20*time.Second, "the next page", chromedp.Click(chromedp.ID("query-next")))
	waitFor(t, ctx, 20*time.Second, "the query finds myDeviceId on the second page", `!!document.querySelector('#query-results tr[data-device="myDeviceId"]')`)
	if page := eval(t, ctx, `document.getElementById("query-page").textContent`); !strings.HasPrefix(page, "rows 101–") {
		t.Errorf("second page: %q", page)
	}
	run(t, ctx, 20*time.Second, "open the twin", chromedp.Click(chromedp.CSS(`#query-results tr[data-device="myDeviceId"] button`)))
	waitFor(t, ctx, 20*time.Second, "the twin of myDeviceId", `document.getElementById("twin-id").textContent === "myDeviceId" && !document.getElementById("twin").hidden`)

	// A bad query: its error, at its position.
	bad := "SELECT * FROM devices WHERE tags.building = "
	run(t, ctx, 20*time.Second, "run a bad query",
		chromedp.SetValue(chromedp.ID("query-text"), bad),
		chromedp.Click(chromedp.ID("query-run")),
	)
	want := "Line 1, column " + strconv.Itoa(len(bad)+1) + ":"
	waitFor(t, ctx, 20*time.Second, "the error of the bad query", `(document.getElementById("query-error-msg") || {}).textContent?.startsWith(`+strconv.Quote(want)+`)`)
	if marked := eval(t, ctx, `document.querySelector("#query-error-text mark") ? "yes" : "no"`); marked != "yes" {
		t.Error("the error's position is not marked in the query text")
	}
	screenshot(t, ctx, "query-error")

	// Jobs: `iotplan apply` (in-process, as a user runs it against a running `iotplan dev`)
	// starts two jobs; they appear and complete on the open page.
	run(t, ctx, 20*time.Second, "open the jobs page", chromedp.Evaluate[chromedp.Void](`location.hash = "#jobs"`))
	waitFor(t, ctx, 20*time.Second, "the jobs page", `document.getElementById("jobs-note").textContent !== ""`)
	dataDir := t.TempDir()
	if err := cli.WriteEndpoint(dataDir, h.ServiceConnectionString(), h.CAFile(), os.Getpid()); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	applied := make(chan int, 1)
	go func() {
		applied <- cli.Main([]string{"apply", "-dev", "-data", dataDir, "-hub-tier", "S3", "-auto-approve", "../../../examples/lockdoor.hcl"},
			cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut, Width: 100})
	}()
	waitFor(t, ctx, 60*time.Second, "two jobs of iotplan apply completed on the page",
		`[...document.querySelectorAll('#jobs-table tbody tr')].filter(r => r.dataset.job.startsWith("iotplan-") && r.querySelector(".status").textContent === "completed").length === 2`)
	select {
	case code := <-applied:
		if code != 0 {
			t.Fatalf("iotplan apply exited %d:\n%s\n%s", code, out.String(), errOut.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("iotplan apply did not return")
	}
	if same := eval(t, ctx, `String(window.__sameDocument)`); same != "yes" {
		t.Error("the page was reloaded")
	}
	if !strings.Contains(out.String(), "Apply complete!") {
		t.Errorf("apply output:\n%s", out.String())
	}
	run(t, ctx, 20*time.Second, "open the method job", chromedp.Click(chromedp.CSS(`#jobs-table tbody tr[data-job^="iotplan-lock-door"] button`)))
	waitFor(t, ctx, 20*time.Second, "the job's device outcomes", `document.querySelectorAll("#job-other tbody tr .status-completed").length === 1`)

	// A method job over every door, some of which fail or are offline: it appears, completes,
	// and its failed devices are listed first.
	if _, err := svc.CreateJob(context.Background(), hubapi.JobRequest{JobID: "lock-every-door", Type: hubapi.JobTypeDeviceMethod,
		QueryCondition: "tags.kind = 'door-controller'", MaxExecutionTimeInSeconds: 120,
		CloudToDeviceMethod: &hubapi.CloudToDeviceMethod{MethodName: "lockDoor", ResponseTimeoutInSeconds: 5}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, 60*time.Second, "the job over every door completes on the page",
		`document.querySelector('#jobs-table tr[data-job="lock-every-door"] .status')?.textContent === "completed"`)
	run(t, ctx, 20*time.Second, "open the job over every door", chromedp.Click(chromedp.CSS(`#jobs-table tr[data-job="lock-every-door"] button`)))
	waitFor(t, ctx, 20*time.Second, "its failed devices first", `document.querySelectorAll("#job-failed tbody tr .status-failed").length > 0 && document.querySelectorAll("#job-other tbody tr").length === 100`)
	screenshot(t, ctx, "jobs")

	// Activity: the job's lockDoor call and the twin job's desired update, live.
	run(t, ctx, 20*time.Second, "open the activity page", chromedp.Evaluate[chromedp.Void](`location.hash = "#activity"`))
	waitFor(t, ctx, 20*time.Second, "the job's method call in the activity",
		`[...document.querySelectorAll("#activity-table tbody tr")].some(r => r.cells[1].textContent === "method call" && r.cells[2].textContent === "job" && r.cells[3].textContent === "myDeviceId")`)
	waitFor(t, ctx, 20*time.Second, "the desired update in the activity",
		`[...document.querySelectorAll("#activity-table tbody tr")].some(r => r.cells[1].textContent === "desired update" && r.cells[3].textContent === "myDeviceId" && r.cells[4].textContent.includes("building"))`)
	screenshot(t, ctx, "activity")

	// The twin apply changed: desired and reported side by side, with their $metadata times.
	run(t, ctx, 20*time.Second, "query myDeviceId again",
		chromedp.Evaluate[chromedp.Void](`location.hash = "#devices"`),
		chromedp.SetValue(chromedp.ID("query-text"), "SELECT * FROM devices WHERE deviceId = 'myDeviceId'"),
		chromedp.Click(chromedp.ID("query-run")),
	)
	waitFor(t, ctx, 20*time.Second, "myDeviceId alone", `document.querySelectorAll("#query-results tbody tr").length === 1 && !!document.querySelector('#query-results tr[data-device="myDeviceId"]')`)
	run(t, ctx, 20*time.Second, "open its twin", chromedp.Click(chromedp.CSS(`#query-results tr[data-device="myDeviceId"] button`)))
	waitFor(t, ctx, 20*time.Second, "desired building and floor beside the reported ones",
		`["building", "floor"].every(k => { const r = document.querySelector('#twin-props tr[data-path="' + k + '"]'); return r && r.cells[1].textContent !== "" && r.cells[2].textContent !== "" && r.cells[3].textContent !== ""; })`)
	screenshot(t, ctx, "devices")

	// The overview with a few throttled requests (an in-process caller over the S3 query
	// rate): the 429s show up live.
	for i := 0; i < 100000 && h.Throttle().Stats()[tier.Queries].Refused < 3; i++ {
		h.Throttle().Reserve(tier.Queries, 1)
	}
	run(t, ctx, 20*time.Second, "open the overview", chromedp.Evaluate[chromedp.Void](`location.hash = "#overview"`))
	waitFor(t, ctx, 20*time.Second, "the 429s on the overview", `document.querySelectorAll("#recent429 tbody tr").length >= 3 && document.getElementById("ov-429").textContent !== "0"`)
	waitFor(t, ctx, 20*time.Second, "the chart", `document.querySelectorAll("#group-chart svg rect").length === 4`)
	screenshot(t, ctx, "overview")
}
