package hubtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/query"
)

const auditFleet = `
group "doors" {
  count = 3
  id    = "door-%02d"
  tags = {
    x = "a"
  }
}
`

// TestLint: each kind of violation at its offset; strings and [[names]] are skipped, and
// documented texts pass.
func TestLint(t *testing.T) {
	type hit struct {
		kind ViolationKind
		off  int
	}
	tests := []struct {
		text string
		want []hit
	}{
		{"SELECT * FROM devices WHERE IS_STRING(tags.x)", []hit{{Function, 28}}},
		{"ENDSWITH (deviceId, 'x') OR is_null(tags.y)", []hit{{Function, 0}, {Function, 28}}},
		{"tags.n = 2.5e+06 OR tags.n = 1E3 OR tags.n = 1e-7", []hit{{Exponent, 9}, {Exponent, 29}, {Exponent, 45}}},
		{"tags.n = 0x1F OR tags.n = 0X0", []hit{{Hex, 9}, {Hex, 26}}},
		{"SELECT TOP 3 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x", []hit{{TopGroupBy, 7}}},
		{"select top 3 tags.x as x, count() as n from devices group\n by tags.x", []hit{{TopGroupBy, 7}}},
		{"SELECT TOP(3) * FROM devices", []hit{{TopParens, 7}}},
		{"SELECT TOP (3) x AS x, COUNT() AS n FROM devices GROUP BY x", []hit{{TopParens, 7}, {TopGroupBy, 7}}},
		// Documented texts, and look-alikes inside strings and [[names]].
		{"SELECT TOP 3 deviceId FROM devices WHERE NOT (tags.x = 'IS_STRING(') AND tags.[[IS_NULL(]] = 1", nil},
		{`SELECT * FROM devices WHERE tags.x = "2.5e+06 0x1F TOP(" OR tags.y = 'it\'s IS_BOOL(' OR tags.z = 'a''ENDSWITH('`, nil},
		{"SELECT tags.x AS x, COUNT() AS n, AVG(a) AS a, SUM(b) AS b, MIN(c) AS c, MAX(d) AS d FROM devices WHERE is_defined(tags.x) AND STARTSWITH(deviceId, 'door') GROUP BY tags.x", nil},
		{"tags.n = 2500000 OR tags.n = 0.0000001 OR tags.n = -3 OR tags.e1x = 1 OR tags.[[group]] IN ['a', 1.5] OR tags.v2e5 = 0", nil},
		{"*", nil},
		{"", nil},
		{"tags.x = 'unterminated IS_STRING(", nil},
		{"tags.[[unterminated IS_STRING(", nil},
		{"tags.ü = '٣' AND tags.x٣ = 1", nil},
	}
	for _, tc := range tests {
		var got []hit
		for _, v := range Lint(tc.text) {
			got = append(got, hit{v.Kind, v.Offset})
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Lint(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

// TestLintMisses pins what StartAuditedWith's documentation says Lint does not catch: texts
// only the Documented dialect rejects (so a strict hub, not Lint, must catch them).
func TestLintMisses(t *testing.T) {
	for _, text := range []string{
		"SELECT * FROM devices WHERE tags.n = .5",
		"SELECT * FROM devices WHERE deviceId IN []",
		"SELECT * FROM devices WHERE -tags.x < 3",
		`SELECT * FROM devices WHERE tags.x = 'a\nb'`,
		"SELECT * FROM devices WHERE tags.x = 'it''s'",
		"SELECT moduleId, COUNT() AS n FROM devices.modules GROUP BY moduleId",
		"SELECT moduleId FROM devices.modules GROUP BY moduleId",
	} {
		if vs := Lint(text); len(vs) != 0 {
			t.Errorf("Lint(%q) = %v; update StartAuditedWith's documentation", text, vs)
		}
		if _, err := query.Parse(text); !errors.Is(err, query.ErrUndocumented) {
			t.Errorf("Parse(%q) = %v, want ErrUndocumented", text, err)
		}
		if _, err := query.ParseDialect(text, query.Extended); err != nil {
			t.Errorf("ParseDialect(%q, Extended) = %v", text, err)
		}
	}
}

// undocumented are texts an Extended hub runs and Lint flags, one per kind.
var undocumented = map[ViolationKind]string{
	Function:   "SELECT * FROM devices WHERE ENDSWITH(deviceId, '01')",
	Exponent:   "SELECT * FROM devices WHERE tags.n = 1e3",
	Hex:        "SELECT * FROM devices WHERE tags.n = 0x10",
	TopGroupBy: "SELECT TOP 1 tags.x AS x, COUNT() AS n FROM devices GROUP BY tags.x",
	TopParens:  "SELECT TOP(1) * FROM devices",
}

// documented are texts of the kinds iotplan sends.
var documented = []string{
	"SELECT COUNT() AS n FROM devices WHERE tags.x = 'a'",
	"SELECT tags.x AS x, COUNT() AS n FROM devices WHERE NOT IS_DEFINED(tags.y) GROUP BY tags.x",
	"SELECT TOP 3 deviceId FROM devices WHERE STARTSWITH(deviceId, 'door') AND tags.n != 2500000",
}

// TestAuditFlagsEachKind runs every kind of violation through an Extended hub, which lets
// them through, and a job whose condition is IS_STRING: the audit flags each and only those.
func TestAuditFlagsEachKind(t *testing.T) {
	t.Parallel()
	a := &Audit{}
	h, c := StartWith(t, hub.Options{QueryDialect: query.Extended, OnQuery: a.record}, auditFleet)
	ctx := context.Background()
	for _, q := range append(slices.Collect(maps.Values(undocumented)), documented...) {
		if _, err := c.Query(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	runJob(t, c, "audit-job", "IS_STRING(tags.x)")
	h.Close() // every event is in

	kinds := map[ViolationKind][]string{}
	for _, v := range a.Violations() {
		kinds[v.Kind] = append(kinds[v.Kind], string(v.Source)+": "+v.Text)
	}
	for kind, q := range undocumented {
		if !slices.Contains(kinds[kind], "query: "+q) {
			t.Errorf("%s not flagged for %q; violations %v", kind, q, kinds)
		}
	}
	if !slices.Contains(kinds[Function], "job: IS_STRING(tags.x)") {
		t.Errorf("job condition not flagged: %v", kinds[Function])
	}
	if n := len(a.Violations()); n != len(undocumented)+1 || len(kinds[Rejected]) != 0 {
		t.Errorf("%d violations, want %d: %v", n, len(undocumented)+1, kinds)
	}
	if got := a.Texts(hub.QueryFromJob); !slices.Equal(got, []string{"IS_STRING(tags.x)"}) {
		t.Errorf("job texts %q", got)
	}
	rec := &recordingTB{TB: t}
	a.Verify(rec)
	if len(rec.errs) != len(undocumented)+1 {
		t.Errorf("Verify reported %d errors, want %d: %q", len(rec.errs), len(undocumented)+1, rec.errs)
	}
}

// TestAuditFlagsRejected: on the strict hub a rejected text is a violation with the hub's
// error (wrapping query.ErrUndocumented).
func TestAuditFlagsRejected(t *testing.T) {
	t.Parallel()
	a := &Audit{}
	_, c := StartWith(t, hub.Options{OnQuery: a.record}, auditFleet)
	if _, err := c.Query(context.Background(), "SELECT * FROM devices WHERE IS_STRING(tags.x)"); err == nil {
		t.Fatal("the strict hub accepted IS_STRING")
	}
	vs := a.Violations()
	if len(vs) != 2 || vs[0].Kind != Rejected || vs[1].Kind != Function {
		t.Fatalf("violations %v", vs)
	}
	if ev := a.Events()[0]; !errors.Is(ev.Err, query.ErrUndocumented) || ev.Source != hub.QueryFromQuery {
		t.Errorf("event %+v", ev)
	}
}

// TestStartAuditedPasses: documented queries and a job pass the audit at cleanup.
func TestStartAuditedPasses(t *testing.T) {
	t.Parallel()
	_, c, a := StartAudited(t, auditFleet)
	for _, q := range documented {
		if _, err := c.Query(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	runJob(t, c, "audited-job", "tags.x = 'a' AND NOT (deviceId IN ['door-01'])")
	for _, q := range a.Texts() {
		t.Logf("sent: %s", q)
	}
}

// TestStartAuditedFailsTheTest: a rejected query fails the test when it ends.
func TestStartAuditedFailsTheTest(t *testing.T) {
	t.Parallel()
	rec := &recordingTB{TB: t}
	// Registered first, so it runs after the audit's own cleanup.
	t.Cleanup(func() {
		if len(rec.errs) != 2 {
			t.Errorf("audit reported %q, want the rejection and the function", rec.errs)
		}
	})
	_, c, _ := StartAudited(rec, auditFleet)
	if _, err := c.Query(context.Background(), "SELECT * FROM devices WHERE IS_STRING(tags.x)"); err == nil {
		t.Fatal("the strict hub accepted IS_STRING")
	}
}

// recordingTB is t, except that Errorf is recorded instead of failing it.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// runJob runs a twin update job on cond to its end and fails unless it completed.
func runJob(t *testing.T, c *hubclient.Client, id, cond string) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	_, err := c.CreateJob(ctx, hubapi.JobRequest{JobID: id, Type: hubapi.JobTypeUpdateTwin, QueryCondition: cond,
		UpdateTwin: &hubapi.TwinPatch{ETag: "*", Tags: map[string]any{"audited": true}}, StartTime: &now})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		j, err := c.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		switch j.Status {
		case hubapi.JobStatusCompleted:
			return
		case hubapi.JobStatusFailed, hubapi.JobStatusCancelled:
			t.Fatalf("job %s %s: %s", id, j.Status, j.FailureReason)
		}
	}
	t.Fatalf("job %s did not end", id)
}

// FuzzLint: Lint never panics and reports offsets inside the text.
//
//	go test -run='^$' -fuzz=FuzzLint -fuzztime=1m ./internal/hub/hubtest
func FuzzLint(f *testing.F) {
	for _, s := range append(slices.Collect(maps.Values(undocumented)), documented...) {
		f.Add(s)
	}
	f.Add(`'\`)
	f.Add("[[")
	f.Add("0x")
	f.Add("1e+")
	f.Fuzz(func(t *testing.T, text string) {
		for _, v := range Lint(text) {
			if v.Offset < 0 || v.Offset >= len(text) {
				t.Fatalf("Lint(%q): offset %d out of range", text, v.Offset)
			}
		}
	})
}
