package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/schema"
)

// sortedIDs answers the two statements the slicer sends — MIN/MAX(deviceId) and COUNT() of
// deviceId below a bound — for a list of device ids, so that the search itself (pure logic:
// how many COUNTs a bound takes and how close it lands) can be measured at any fleet size
// and id shape. The local hub answers the same statements for real in the rollout tests.
type sortedIDs struct {
	ids   []string
	calls int
}

func (s *sortedIDs) QueryRows(_ context.Context, stmt string, _ int) ([]map[string]any, bool, error) {
	s.calls++
	q, err := query.Parse(stmt)
	if err != nil {
		return nil, false, err
	}
	if q.Where == nil {
		return []map[string]any{{"lo": s.ids[0], "hi": s.ids[len(s.ids)-1]}}, false, nil
	}
	if bound, ok := boundOf(q.Where, query.OpLt); ok {
		n := sort.SearchStrings(s.ids, bound)
		row := map[string]any{aliasCount: float64(n)}
		if n > 0 {
			row["hi"] = s.ids[n-1]
		}
		return []map[string]any{row}, false, nil
	}
	if bound, ok := boundOf(q.Where, query.OpGe); ok {
		if i := sort.SearchStrings(s.ids, bound); i < len(s.ids) {
			return []map[string]any{{"lo": s.ids[i]}}, false, nil
		}
		return []map[string]any{{}}, false, nil
	}
	return nil, false, fmt.Errorf("no deviceId bound in %s", stmt)
}

// boundOf finds the deviceId <op> 'bound' term of a condition.
func boundOf(e query.Expr, op query.Op) (string, bool) {
	switch x := e.(type) {
	case *query.LogicalExpr:
		for _, t := range x.Terms {
			if b, ok := boundOf(t, op); ok {
				return b, true
			}
		}
	case *query.BinaryExpr:
		if r, ok := x.L.(*query.RefExpr); ok && x.Op == op && query.Format(r) == "deviceId" {
			if lit, ok := x.R.(*query.LiteralExpr); ok {
				return lit.Str, true
			}
		}
	}
	return "", false
}

// idShapes are fleets of n device ids as operators name them.
func idShapes(n int) map[string][]string {
	shapes := map[string][]string{}
	add := func(name string, f func(i int) string) {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = f(i)
		}
		sort.Strings(ids)
		shapes[name] = ids
	}
	add("sequential door-0000000", func(i int) string { return fmt.Sprintf("door-%07d", i) })
	add("unpadded dev1..devN", func(i int) string { return fmt.Sprintf("dev%d", i+1) })
	add("random hex (GUID-like)", func(i int) string {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		h := hex.EncodeToString(sum[:16])
		return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	})
	add("three sites, skewed", func(i int) string {
		switch {
		case i%10 < 7:
			return fmt.Sprintf("berlin-1/door-%06d", i)
		case i%10 < 9:
			return fmt.Sprintf("lab/sensor-%d", i)
		}
		return fmt.Sprintf("zz-legacy-%x", i*7919)
	})
	return shapes
}

// TestSliceEvenness measures the slicer on 100,000 ids of each shape (1,000,000 with
// IOTPLAN_SLICE_1M=1, figures in docs/rollout.md): the waves 1%, 10%, 100% land within
// tolerance, and a bound costs at most maxSliceSteps COUNTs.
func TestSliceEvenness(t *testing.T) {
	n := 100_000
	if os.Getenv("IOTPLAN_SLICE_1M") != "" {
		n = 1_000_000
	}
	names := make([]string, 0, 4)
	shapes := idShapes(n)
	for name := range shapes {
		names = append(names, name)
	}
	sort.Strings(names)
	ws := []schema.Wave{{Text: "1%", Percent: 1}, {Text: "10%", Percent: 10}, {Text: "50%", Percent: 50}, {Text: "100%", Percent: 100}}
	for _, name := range names {
		q := &sortedIDs{ids: shapes[name]}
		m := &memo{q: q, rows: map[string]memoRows{}}
		ro, err := readRollout(context.Background(), m, query.All(), n, &schema.Rollout{Waves: ws}, "k", nil, true)
		if err != nil {
			t.Fatal(err)
		}
		var report []string
		for i, w := range ro.Waves[:len(ro.Waves)-1] {
			want := waveTargets(ws, n)[i]
			if d := int(math.Abs(float64(w.Cumulative - want))); d > tolerance(want) {
				t.Errorf("%s: wave %s holds %d devices cumulatively, want %d ± %d", name, w.Wave, w.Cumulative, want, tolerance(want))
			}
			report = append(report, fmt.Sprintf("%s→%d", w.Wave, w.Cumulative))
		}
		if ro.Queries > 1+3*maxSliceSteps {
			t.Errorf("%s: %d queries", name, ro.Queries)
		}
		t.Logf("%-26s %d devices: %d queries (%s)", name, n, ro.Queries, strings.Join(report, ", "))
	}
}
