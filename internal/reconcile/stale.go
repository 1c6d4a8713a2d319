package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// Stale saved plans. A plan records, for every resource it will act on, the queries Read sent
// for it (the GROUP BYs and COUNTs, not the example-device queries) and the rows the hub
// answered: its fingerprint of what it saw. Before a saved plan is applied, Recheck sends the
// same handful of queries again; if any answer differs, the fleet moved since the plan was
// made — a value written meanwhile would be overwritten without having been shown — and the
// plan is refused, naming what moved. (The state's serial, checked by the CLI, catches another
// apply in between.)

// ErrStale: a saved plan no longer matches the fleet or the state.
var ErrStale = errors.New("the saved plan is stale")

// Check is one query a plan's resource depends on and the rows the hub answered.
type Check struct {
	Addr      string `json:"address"`
	Statement string `json:"statement"`
	Max       int    `json:"max,omitempty"` // rows read (a GROUP BY's first page)
	Rows      string `json:"rows"`          // canonical JSON: rows sorted, keys sorted
	// Sensitive: the statement holds a sensitive value; messages do not print it.
	Sensitive bool `json:"sensitive,omitempty"`
}

// canonicalRows is the order-independent JSON of a query's rows (GROUP BY rows come in any
// order).
func canonicalRows(rows []map[string]any) string {
	texts := make([]string, len(rows))
	for i, r := range rows {
		texts[i] = valueKey(r)
	}
	sort.Strings(texts)
	return "[" + strings.Join(texts, ",") + "]"
}

// Recheck sends the plan's checks again and returns ErrStale, naming each resource and query
// whose answer moved, when the fleet no longer looks as the plan saw it.
func Recheck(ctx context.Context, q Querier, p *Plan) error {
	var moved []string
	for _, c := range p.Checks {
		rows, _, err := q.QueryRows(ctx, c.Statement, c.Max)
		if err != nil {
			return fmt.Errorf("%s: checking the saved plan against the fleet: %w", c.Addr, err)
		}
		if now := canonicalRows(rows); now != c.Rows {
			stmt := c.Statement
			if c.Sensitive {
				stmt = "a query with a sensitive value"
			}
			moved = append(moved, fmt.Sprintf("%s: %s answered %s, the plan saw %s", c.Addr, stmt, clip(now), clip(c.Rows)))
		}
	}
	if len(moved) > 0 {
		return fmt.Errorf("%w: the fleet changed since it was made (%s); nothing was changed: run plan again", ErrStale, strings.Join(moved, "; "))
	}
	return nil
}

// clip shortens an answer for a message.
func clip(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// planChecks keeps the checks of the resources the plan acts on: a change to a resource it
// leaves alone cannot be overwritten by applying it. Checks of resources whose target is
// sensitive are marked, so a stale-plan message does not print the query.
func planChecks(cfg *Config, obs *Observed, p *Plan) []Check {
	acting := map[string]bool{}
	for _, r := range p.Resources {
		acting[r.Addr] = r.Action != NoOp && r.Refused == ""
	}
	sensitive := map[string]bool{}
	for _, t := range cfg.Twins {
		sensitive[t.Addr] = t.TargetSensitive
	}
	for _, m := range cfg.Methods {
		sensitive[m.Addr] = m.TargetSensitive
	}
	var out []Check
	for _, c := range obs.Checks {
		if acting[c.Addr] {
			c.Sensitive = sensitive[c.Addr]
			out = append(out, c)
		}
	}
	return out
}

// distinct is the plan's count of devices its twin updates touch, each once, when Read counted
// it for exactly the conditions the plan's jobs use (nil otherwise).
func distinct(obs *Observed, p *Plan) *int {
	if obs.Distinct < 0 {
		return nil
	}
	for _, r := range p.Resources {
		for _, j := range r.Jobs {
			if j.Request.Type == hubapi.JobTypeUpdateTwin && j.Step != StepMark && j.Request.QueryCondition != "" && !counted(obs, j.Request.QueryCondition) {
				return nil
			}
		}
	}
	n := obs.Distinct
	return &n
}

// counted reports whether cond is one of the conditions Read ORed for Distinct.
func counted(obs *Observed, cond string) bool {
	for _, o := range obs.Twins {
		for _, j := range o.Jobs {
			if j.Condition == cond {
				return true
			}
		}
	}
	for _, rs := range obs.Removals {
		for _, r := range rs {
			if r.Condition == cond {
				return true
			}
		}
	}
	return false
}
