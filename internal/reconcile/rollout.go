package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/schema"
)

// Rollouts. A resource with a rollout block applies its change in waves. Wave i covers the
// devices of the resource's slicing condition S whose deviceId lies below a bound b_i, so
// that the waves' cumulative device counts are the declared shares of S: S is what the
// resource's jobs select — a twin's drift condition (its update jobs' conditions), a method's
// target, or, for a run-once method, the devices that have not run it. Wave i's jobs are the
// resource's jobs AND deviceId >= b_(i-1) AND deviceId < b_i.
//
// The bounds are found on the hub with documented constructs only (docs/query.md): one
// SELECT MIN(deviceId), MAX(deviceId) over S, then, per bound, COUNT(S AND deviceId < b) for
// candidate strings b chosen by interpolation between the bracketing candidates (device ids
// read as numbers in base 96 after their common prefix), alternating with bisection so that
// the search ends: at most maxSliceSteps COUNTs per bound, usually 2 to 6 for sequential or
// random ids. A bound is accepted within tolerance(k) devices of its share; the counts the
// plan shows are the ones counted. String order is the hub's ordinal order of ASCII device ids.

// maxSliceSteps bounds the COUNT queries spent on one wave bound.
const maxSliceSteps = 24

// WaveObserved is one wave of a rollout as Read found it.
type WaveObserved struct {
	Wave string `json:"wave"` // as declared: "10%", "50"
	// Want is the cumulative device count the wave's share asks for; Cumulative the devices of S
	// below Upper as counted (every device of S for the last wave), Below those below the
	// wave's lower bound (the previous wave's Cumulative; 0 for a first wave that retries).
	Want       int    `json:"want"`
	Cumulative int    `json:"cumulative"`
	Below      int    `json:"below"`
	Upper      string `json:"upper,omitempty"` // exclusive deviceId bound; "" for the last wave
	Done       bool   `json:"done,omitempty"`  // completed by an earlier apply
}

// RolloutObserved is what Read found for a resource's rollout.
type RolloutObserved struct {
	// Key identifies what the resource sets (target, keys and values, or method, payload and
	// triggers): a rollout is resumed only while its Key is the same.
	Key   string         `json:"key"`
	Total int            `json:"total"` // devices of S
	Waves []WaveObserved `json:"waves"`
	// Resumed counts the waves an earlier, aborted apply completed; Retry says the first
	// remaining wave has no lower bound, so it also takes the devices of completed waves that
	// S still selects (their failures: S excludes devices that took the change).
	Resumed int  `json:"resumed,omitempty"`
	Retry   bool `json:"retry,omitempty"`
	Queries int  `json:"queries"` // hub calls the slicing used
}

// readRollout slices S into r's waves on the hub; prior is the state's record of the
// rollout when an earlier apply stopped it (nil otherwise), whose bounds are reused.
func readRollout(ctx context.Context, m *memo, s query.Expr, total int, r *schema.Rollout, key string, prior *state.RolloutRecord, retry bool) (*RolloutObserved, error) {
	sl := &slicer{ctx: ctx, m: m, cond: s}
	ro := &RolloutObserved{Key: key, Total: total}
	wants := waveTargets(r.Waves, total)
	resume := prior != nil && prior.Key == key && prior.Completed > 0 && prior.Completed < len(wants) && len(prior.Bounds) == len(wants)-1
	lo, hi, err := sl.minMax()
	if err != nil {
		return nil, err
	}
	below := 0
	for i, want := range wants {
		w := WaveObserved{Wave: r.Waves[i].Text, Want: want}
		switch {
		case resume && i < prior.Completed:
			w.Done, w.Upper = true, prior.Bounds[i]
			ro.Resumed = i + 1
		case i == len(wants)-1:
			w.Cumulative = total
		case resume:
			w.Upper = prior.Bounds[i]
			if w.Cumulative, err = sl.countBelow(w.Upper); err != nil {
				return nil, err
			}
		default:
			if w.Upper, w.Cumulative, err = sl.bound(want, total, lo, hi); err != nil {
				return nil, err
			}
		}
		if !w.Done && w.Upper != "" {
			// The bound's count joins the plan's checks: a saved plan whose waves moved is stale.
			rows := []map[string]any{{aliasCount: float64(w.Cumulative)}}
			m.check(countStatement(query.And(s, query.Lt(query.P("deviceId"), w.Upper))), 0, rows)
		}
		if !w.Done {
			if i == ro.Resumed && ro.Resumed > 0 && !retry {
				if below, err = sl.countBelow(ro.Waves[i-1].Upper); err != nil {
					return nil, err
				}
			}
			w.Below = below
			below = w.Cumulative
		}
		ro.Waves = append(ro.Waves, w)
	}
	ro.Retry = resume && retry
	ro.Queries = sl.queries
	return ro, nil
}

// waveTargets turns declared waves into cumulative device counts of total: a share rounds up
// (1% of 40 devices is 1), a count is capped at total, and counts never decrease.
func waveTargets(waves []schema.Wave, total int) []int {
	out := make([]int, len(waves))
	prev := 0
	for i, w := range waves {
		k := w.Count
		if w.Percent > 0 {
			k = int(math.Ceil(w.Percent * float64(total) / 100))
		}
		k = max(prev, min(k, total))
		out[i], prev = k, k
	}
	return out
}

// tolerance is how far from its share a bound may land: exact below 50 devices, then 2%.
func tolerance(k int) int { return k / 50 }

// rolloutKey identifies what a resource sets, for resuming its rollout.
func rolloutKey(parts ...any) string {
	b, _ := json.Marshal(parts)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// slicer counts the devices of cond below deviceId bounds.
type slicer struct {
	ctx     context.Context
	m       *memo
	cond    query.Expr
	queries int
}

func (s *slicer) countBelow(bound string) (int, error) {
	s.queries++
	return count(s.ctx, s.m.q, s.m.addr, query.And(s.cond, query.Lt(query.P("deviceId"), bound)))
}

// minMax reads the least and greatest deviceId of cond.
func (s *slicer) minMax() (lo, hi string, err error) {
	s.queries++
	id := query.P("deviceId")
	stmt := query.Select(query.Devices).Min(id, "lo").Max(id, "hi").Where(s.cond).String()
	rows, _, err := s.m.q.QueryRows(s.ctx, stmt, 0)
	if err != nil {
		return "", "", fmt.Errorf("%s: reading the device ids' range: %w", s.m.addr, err)
	}
	if len(rows) == 1 {
		lo, _ = rows[0]["lo"].(string)
		hi, _ = rows[0]["hi"].(string)
	}
	if lo == "" || hi == "" {
		return "", "", fmt.Errorf("%s: the hub gave no device id range for the rollout", s.m.addr)
	}
	return lo, hi, nil
}

// bound finds a string b with COUNT(cond AND deviceId < b) within tolerance of want (total
// is the devices of cond; lo and hi are cond's least and greatest ids), or the closest one
// maxSliceSteps steps found. Each step reads the bracket [loB, hiB) in a number space of its
// own (the digits after the bracket's common prefix), so precision follows the search into
// clusters of ids that share long prefixes; and each step's answer moves the bracket's ends
// onto actual ids (the greatest id below a candidate comes with its COUNT; the least id at
// or above it is asked for when the candidate fell into a gap), so empty stretches of the id
// space cost no steps.
func (s *slicer) bound(want, total int, lo, hi string) (string, int, error) {
	switch {
	case want <= 0:
		return lo, 0, nil
	case want >= total:
		return above(hi), total, nil
	}
	loB, cl := lo, 0            // nothing is below the least id
	hiB, ch := above(hi), total // every device is below this
	best, bestN := hiB, total
	for step := 0; step < maxSliceSteps; step++ {
		sp := newIDSpace(loB, hiB)
		x := sp.next(sp.num(loB), cl, sp.num(hiB), ch, want, step%2 == 1)
		if x == nil {
			break
		}
		b := sp.str(x)
		n, below, err := s.countBelow2(b)
		if err != nil {
			return "", 0, err
		}
		if abs(n-want) < abs(bestN-want) {
			best, bestN = b, n
		}
		switch {
		case abs(n-want) <= tolerance(want):
			return best, bestN, nil
		case n >= want:
			hiB, ch = above(below), n // the same devices are below the greatest of them
		case n == cl:
			if loB, err = s.leastFrom(b); err != nil { // b fell into a gap: jump over it
				return "", 0, err
			}
		default:
			loB, cl = b, n
		}
	}
	return best, bestN, nil
}

// countBelow2 counts the devices of cond below bound and reads the greatest id among them.
func (s *slicer) countBelow2(bound string) (n int, greatest string, err error) {
	s.queries++
	id := query.P("deviceId")
	stmt := query.Select(query.Devices).Count(aliasCount).Max(id, "hi").Where(query.And(s.cond, query.Lt(id, bound))).String()
	rows, _, err := s.m.q.QueryRows(s.ctx, stmt, 0)
	if err == nil && len(rows) == 1 {
		n, err = intField(rows[0], aliasCount)
		greatest, _ = rows[0]["hi"].(string)
	}
	if err != nil {
		return 0, "", fmt.Errorf("%s: slicing the rollout: %w", s.m.addr, err)
	}
	return n, greatest, nil
}

// leastFrom reads the least id of cond at or above bound.
func (s *slicer) leastFrom(bound string) (string, error) {
	s.queries++
	id := query.P("deviceId")
	stmt := query.Select(query.Devices).Min(id, "lo").Where(query.And(s.cond, query.Ge(id, bound))).String()
	rows, _, err := s.m.q.QueryRows(s.ctx, stmt, 0)
	if err != nil {
		return "", fmt.Errorf("%s: slicing the rollout: %w", s.m.addr, err)
	}
	least := ""
	if len(rows) == 1 {
		least, _ = rows[0]["lo"].(string)
	}
	if least == "" {
		return "", fmt.Errorf("%s: slicing the rollout: no device id at or above a bound", s.m.addr)
	}
	return least, nil
}

// above is the least string of the id space greater than id: id followed by the least
// character ("door-7" → "door-7 ").
func above(id string) string { return id + " " }

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

// idSpace reads device ids as numbers: the characters after the common prefix of the range,
// idDigits of them, each a digit in base 96 (0x20 → 0 … 0x7f → 95; device ids are ASCII
// printables, https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-identity-registry#device-identity-properties).
type idSpace struct{ prefix string }

const (
	idDigits = 16
	idBase   = 96
)

func newIDSpace(lo, hi string) idSpace {
	n := 0
	for n < len(lo) && n < len(hi) && lo[n] == hi[n] {
		n++
	}
	return idSpace{prefix: lo[:n]}
}

func (sp idSpace) num(s string) *big.Int {
	s = strings.TrimPrefix(s, sp.prefix)
	x := new(big.Int)
	base := big.NewInt(idBase)
	for i := 0; i < idDigits; i++ {
		d := 0
		if i < len(s) {
			d = min(max(int(s[i])-0x20, 0), idBase-1)
		}
		x.Mul(x, base).Add(x, big.NewInt(int64(d)))
	}
	return x
}

// str is the shortest string whose number is x (trailing zero digits dropped).
func (sp idSpace) str(x *big.Int) string {
	digits := make([]byte, idDigits)
	v := new(big.Int).Set(x)
	base, r := big.NewInt(idBase), new(big.Int)
	for i := idDigits - 1; i >= 0; i-- {
		v.DivMod(v, base, r)
		digits[i] = byte(0x20 + r.Int64())
	}
	return sp.prefix + strings.TrimRight(string(digits), " ")
}

// next is the next candidate strictly between xl and xh: interpolated from the counts (cl
// below xl, ch below xh), or the midpoint when bisect or when interpolation is not possible;
// nil when no number lies between them.
func (sp idSpace) next(xl *big.Int, cl int, xh *big.Int, ch, want int, bisect bool) *big.Int {
	gap := new(big.Int).Sub(xh, xl)
	if gap.Cmp(big.NewInt(1)) <= 0 {
		return nil
	}
	var x *big.Int
	if bisect || ch <= cl {
		x = new(big.Int).Add(xl, new(big.Int).Rsh(gap, 1))
	} else {
		f := new(big.Float).SetInt(gap)
		f.Mul(f, big.NewFloat(float64(want-cl)/float64(ch-cl)))
		step, _ := f.Int(nil)
		x = new(big.Int).Add(xl, step)
	}
	if x.Cmp(xl) <= 0 {
		x = new(big.Int).Add(xl, big.NewInt(1))
	}
	if x.Cmp(xh) >= 0 {
		x = new(big.Int).Sub(xh, big.NewInt(1))
	}
	return x
}

// readRollouts slices the resources that declare a rollout and have devices to change.
func readRollouts(ctx context.Context, m *memo, cfg *Config, obs *Observed, opts PlanOptions) error {
	for _, t := range cfg.Twins {
		o := obs.Twins[t.Addr]
		if t.Rollout == nil || o == nil || len(o.Jobs) == 0 {
			continue
		}
		m.addr = t.Addr
		s, total, err := twinSlicing(ctx, m, o)
		if err != nil || total == 0 {
			return err
		}
		pt, err := prepareTwin(t)
		if err != nil {
			return err
		}
		key := rolloutKey(KindTwin, query.Format(normTarget(t.Target)), pt.leaves)
		if o.Rollout, err = readRollout(ctx, m, s, total, t.Rollout, key, priorRollout(opts, t.Addr), true); err != nil {
			return err
		}
	}
	for _, mt := range cfg.Methods {
		o := obs.Methods[mt.Addr]
		if mt.Rollout == nil || o == nil {
			continue
		}
		m.addr = mt.Addr
		s, total := scope(mt.Target), o.Targeted
		if mt.TriggersSet {
			s, total = mustCondition(o.MarkCondition), o.Pending
		}
		if total == 0 {
			continue
		}
		key := rolloutKey(KindMethod, query.Format(normTarget(mt.Target)), mt.Method, mt.Payload, mt.Triggers, mt.TriggersSet)
		var err error
		if o.Rollout, err = readRollout(ctx, m, s, total, mt.Rollout, key, priorRollout(opts, mt.Addr), mt.TriggersSet); err != nil {
			return err
		}
	}
	return nil
}

// twinSlicing is a twin resource's slicing condition — its update job's condition, or the
// OR of its jobs' when the keys were split over several — and how many devices it selects.
func twinSlicing(ctx context.Context, m *memo, o *TwinObserved) (query.Expr, int, error) {
	if len(o.Jobs) == 1 {
		return mustCondition(o.Jobs[0].Condition), o.Jobs[0].Devices, nil
	}
	conds := make([]query.Expr, len(o.Jobs))
	for i, j := range o.Jobs {
		conds[i] = mustCondition(j.Condition)
	}
	s := query.Or(conds...)
	n, err := count(ctx, m, m.addr, s)
	return s, n, err
}

// priorRollout is the state's record of a resource's stopped rollout, nil when there is none.
func priorRollout(opts PlanOptions, addr string) *state.RolloutRecord {
	if opts.Prior == nil {
		return nil
	}
	r := opts.Prior.Resource(addr)
	if r == nil || r.Rollout == nil {
		return nil
	}
	return r.Rollout
}
