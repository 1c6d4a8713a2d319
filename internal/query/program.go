package query

import (
	"encoding/json"
)

// Program is a compiled statement.
type Program struct {
	q     *Query
	where condFn // nil: every document
	mode  mode
	top   int // -1: no TOP

	cols     []column // projections, in SELECT order
	groupGet getter   // GROUP BY property
}

type mode uint8

const (
	modeStar    mode = iota // SELECT *: the documents themselves
	modeProject             // SELECT a, b: one row per document
	modeAggr                // aggregates, optionally grouped
)

type column struct {
	key string
	agg aggKind
	get getter // the property, or the aggregate's argument
}

type aggKind uint8

const (
	aggNone aggKind = iota // a property (the GROUP BY key)
	aggCount
	aggSum
	aggAvg
	aggMin
	aggMax
)

var aggKinds = map[string]aggKind{"COUNT": aggCount, "SUM": aggSum, "AVG": aggAvg, "MIN": aggMin, "MAX": aggMax}

// Compile checks and compiles a statement. Errors are *Error.
func Compile(q *Query) (*Program, error) {
	if err := checkQuery(q); err != nil {
		return nil, err
	}
	p := &Program{q: q, top: -1}
	if q.HasTop {
		p.top = q.Top
	}
	if q.Where != nil {
		if _, all := q.Where.(*AllExpr); !all {
			c := &compiler{src: q.From}
			fn, err := c.cond(q.Where)
			if err != nil {
				return nil, err
			}
			p.where = fn
		}
	}
	keys := projectionKeys(q)
	for i, pr := range q.Select {
		col := column{key: keys[i]}
		var ref *RefExpr
		switch x := pr.Expr.(type) {
		case *RefExpr:
			ref = x
		case *AggregateExpr:
			col.agg, ref = aggKinds[x.Func], x.Arg
			p.mode = modeAggr
		}
		if ref != nil {
			segs, err := resolve(q.From, ref)
			if err != nil {
				return nil, err
			}
			col.get = makeGetter(segs)
		}
		p.cols = append(p.cols, col)
	}
	if len(p.cols) > 0 && p.mode != modeAggr {
		p.mode = modeProject
	}
	if q.GroupBy != nil {
		segs, err := resolve(q.From, q.GroupBy)
		if err != nil {
			return nil, err
		}
		p.groupGet = makeGetter(segs)
		p.mode = modeAggr
	}
	return p, nil
}

// MustCompile is Compile for statements fixed at build time; it panics on error.
func MustCompile(src string) *Program {
	q, err := Parse(src)
	if err != nil {
		panic(err)
	}
	p, err := Compile(q)
	if err != nil {
		panic(err)
	}
	return p
}

// Query returns the statement the program was compiled from.
func (p *Program) Query() *Query { return p.q }

// Source is the FROM collection.
func (p *Program) Source() Source { return p.q.From }

// ItemType is the hub's x-ms-item-type for the results: "twin" for SELECT *
// over devices or devices.modules, "deviceJob" for devices.jobs, "raw" for
// projections and aggregates.
func (p *Program) ItemType() string {
	switch {
	case p.mode != modeStar:
		return "raw"
	case p.q.From == Jobs:
		return "deviceJob"
	}
	return "twin"
}

// Match reports whether doc satisfies the WHERE clause (true without one).
func (p *Program) Match(doc any) bool {
	return p.where == nil || p.where(doc) == isTrue
}

// Run evaluates the statement over the documents each yields and returns the
// result rows, ready for encoding/json: for SELECT * the documents themselves
// (not copied: do not modify them), otherwise map[string]any rows whose
// values share structure with the documents. Numbers produced by aggregates
// are float64. Results keep the order of the input; groups appear in the
// order their first document was seen. Run stops pulling documents once TOP
// rows are produced (when no aggregation needs them all).
func (p *Program) Run(each func(yield func(doc any) bool)) ([]any, error) {
	if each == nil {
		each = func(func(any) bool) {} // no documents
	}
	rows := []any{}
	if p.top == 0 {
		return rows, nil
	}
	switch p.mode {
	case modeStar, modeProject:
		each(func(d any) bool {
			if p.where != nil && p.where(d) != isTrue {
				return true
			}
			if p.mode == modeStar {
				rows = append(rows, d)
			} else {
				rows = append(rows, p.project(d))
			}
			return p.top < 0 || len(rows) < p.top
		})
		return rows, nil
	}
	g := newGrouper(p)
	each(func(d any) bool {
		if p.where == nil || p.where(d) == isTrue {
			g.add(d)
		}
		return true
	})
	rows = g.rows()
	if p.top >= 0 && len(rows) > p.top {
		rows = rows[:p.top]
	}
	return rows, nil
}

func (p *Program) project(d any) map[string]any {
	row := make(map[string]any, len(p.cols))
	for _, c := range p.cols {
		if v, ok := c.get(d); ok {
			row[c.key] = v
		}
	}
	return row
}

// groupKey identifies a group: the JSON type and value of the GROUP BY
// property (objects and arrays by their JSON encoding).
type groupKey struct {
	k kind
	n float64
	s string
}

type group struct {
	key   value
	count float64
	aggs  []aggState
}

type aggState struct {
	sum  float64
	n    int
	bad  bool // SUM/AVG saw a non-number; MIN/MAX saw an object or array
	best value
}

type grouper struct {
	p      *Program
	strs   map[string]*group // string keys, the common case, without struct hashing
	index  map[groupKey]*group
	order  []*group
	single *group // no GROUP BY: one group, present even with no documents
}

func newGrouper(p *Program) *grouper {
	g := &grouper{p: p, strs: map[string]*group{}, index: map[groupKey]*group{}}
	if p.groupGet == nil {
		g.single = &group{aggs: make([]aggState, len(p.cols))}
		g.order = append(g.order, g.single)
	}
	return g
}

func (g *grouper) newGroup(key value) *group {
	grp := &group{key: key, aggs: make([]aggState, len(g.p.cols))}
	g.order = append(g.order, grp)
	return grp
}

func (g *grouper) add(d any) {
	grp := g.single
	if grp == nil {
		var key value
		if v, ok := g.p.groupGet(d); ok {
			key = valueOf(v)
		}
		if key.k == kStr {
			if grp = g.strs[key.s]; grp == nil {
				grp = g.newGroup(key)
				g.strs[key.s] = grp
			}
		} else {
			gk := groupKey{k: key.k, n: key.n}
			if key.k == kArr || key.k == kObj {
				b, _ := json.Marshal(key.r) // decoded JSON always re-encodes
				gk.s = string(b)
			}
			if gk.n == 0 {
				gk.n = 0 // fold -0 into 0
			}
			if grp = g.index[gk]; grp == nil {
				grp = g.newGroup(key)
				g.index[gk] = grp
			}
		}
	}
	grp.count++
	for i := range g.p.cols {
		c := &g.p.cols[i]
		if c.agg == aggNone || c.agg == aggCount {
			continue
		}
		v, ok := c.get(d)
		if !ok {
			continue // undefined values are skipped by every aggregate
		}
		st := &grp.aggs[i]
		w := valueOf(v)
		switch c.agg {
		case aggSum, aggAvg:
			if w.k != kNum {
				st.bad = true
				continue
			}
			st.sum += w.n
			st.n++
		case aggMin, aggMax:
			switch w.k {
			case kArr, kObj:
				st.bad = true
				continue
			case kUndef:
				continue
			}
			ord := typeOrder(w, st.best)
			if st.n == 0 || c.agg == aggMin && ord < 0 || c.agg == aggMax && ord > 0 {
				st.best = w
			}
			st.n++
		}
	}
}

// typeOrder orders values across types as DocumentDB does for MIN/MAX:
// null < false < true < numbers < strings.
func typeOrder(a, b value) int {
	if a.k != b.k {
		if a.k < b.k {
			return -1
		}
		return 1
	}
	return compareOrder(a, b)
}

func (g *grouper) rows() []any {
	rows := make([]any, 0, len(g.order))
	for _, grp := range g.order {
		row := make(map[string]any, len(g.p.cols))
		for i, c := range g.p.cols {
			st := grp.aggs[i]
			switch c.agg {
			case aggNone:
				if grp.key.k != kUndef {
					row[c.key] = grp.key.toAny()
				}
			case aggCount:
				row[c.key] = grp.count
			case aggSum:
				if !st.bad {
					row[c.key] = st.sum
				}
			case aggAvg:
				if !st.bad && st.n > 0 {
					row[c.key] = st.sum / float64(st.n)
				}
			case aggMin, aggMax:
				if !st.bad && st.n > 0 {
					row[c.key] = st.best.toAny()
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}
