package state

import (
	"context"
	"testing"

	"github.com/iotplan/iotplan/internal/query"
)

// State devices never match a target: ExcludeStateDevices is documented query language, and
// on the hub a target "*" narrowed by it counts every device but the state's.
func TestExcludeStateDevices(t *testing.T) {
	cond := ExcludeStateDevices()
	if err := query.CheckCondition(cond); err != nil {
		t.Fatalf("ExcludeStateDevices is not documented query language: %v", err)
	}
	if got, want := query.Format(cond), "NOT IS_DEFINED(tags.iotplanState)"; got != want {
		t.Errorf("ExcludeStateDevices = %s, want %s", got, want)
	}

	_, c := startHub(t)
	ctx := context.Background()
	count := func(where query.Expr) float64 {
		t.Helper()
		q := query.Select(query.Devices).Count("n").Where(where)
		if err := q.Check(); err != nil {
			t.Fatal(err)
		}
		rows, err := c.Query(ctx, q.String())
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 0 {
			return 0
		}
		return rows[0]["n"].(float64)
	}
	all, targeted := count(query.All()), count(query.And(query.All(), cond))
	l := lock(t, openStore(t, c, DefaultName), "apply")
	defer l.Unlock(ctx)
	if _, err := l.Write(ctx, sampleState(1)); err != nil {
		t.Fatal(err)
	}
	if n := count(query.All()); n != all+1 {
		t.Fatalf("devices after creating a state: %v, want %v", n, all+1)
	}
	if n := count(query.And(query.All(), cond)); n != targeted {
		t.Errorf("target * narrowed by ExcludeStateDevices counts %v devices with a state device, %v without", n, targeted)
	}
	if n := count(query.And(query.Eq(query.P("deviceId"), DeviceID(DefaultName)), cond)); n != 0 {
		t.Errorf("the state device matched: %v", n)
	}
}
