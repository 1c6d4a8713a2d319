package reconcile

import (
	"context"
	"fmt"
	"sort"

	"github.com/iotplan/iotplan/internal/query"
)

// memFleet is an in-memory set of twin documents answering queries with the real query
// engine (internal/query) in IoT Hub's documented dialect: the planner's queries are parsed
// and evaluated exactly as the strict local hub does, without a network. It records every
// statement.
type memFleet struct {
	docs    []map[string]any
	queries []string
}

func (f *memFleet) QueryRows(ctx context.Context, q string, max int) ([]map[string]any, bool, error) {
	rows, err := f.query(ctx, q)
	if err != nil {
		return nil, false, err
	}
	if max > 0 && len(rows) > max {
		return rows[:max], true, nil
	}
	return rows, false, nil
}

func (f *memFleet) query(_ context.Context, q string) ([]map[string]any, error) {
	f.queries = append(f.queries, q)
	parsed, err := query.Parse(q)
	if err != nil {
		return nil, fmt.Errorf("planner sent a query outside the documented dialect %q: %w", q, err)
	}
	prog, err := query.Compile(parsed)
	if err != nil {
		return nil, fmt.Errorf("planner sent an invalid query %q: %w", q, err)
	}
	rows, err := prog.Run(func(yield func(any) bool) {
		for _, d := range f.docs {
			if !yield(d) {
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		out[i] = r.(map[string]any)
	}
	return out, nil
}

func (f *memFleet) Calls() map[string]int { return map[string]int{"query": len(f.queries)} }

// twinDoc makes a twin document as the hub returns it.
func twinDoc(id string, desired, tags map[string]any) map[string]any {
	d := map[string]any{"$version": float64(1)}
	for k, v := range desired {
		d[k] = v
	}
	doc := map[string]any{
		"deviceId":   id,
		"etag":       "AAAAAAAAAAE=",
		"status":     "enabled",
		"properties": map[string]any{"desired": d, "reported": map[string]any{"$version": float64(1)}},
	}
	if tags != nil {
		doc["tags"] = tags
	}
	return doc
}

// matching returns the ids of docs a condition selects.
func matching(cond query.Expr, docs []map[string]any) ([]string, error) {
	c, err := query.CompileCondition(cond)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, d := range docs {
		if c.Match(d) {
			ids = append(ids, d["deviceId"].(string))
		}
	}
	sort.Strings(ids)
	return ids, nil
}
