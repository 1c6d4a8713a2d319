package query

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkLimits validates an expression tree: the node and depth limits, and
// everything a builder could get wrong that the parser cannot produce
// (invalid values, unprintable names, misplaced '*' or aggregates).
func checkLimits(e Expr) *Error {
	c := checker{}
	c.expr(e, 1, true)
	return c.err
}

type checker struct {
	nodes int
	err   *Error
}

func (c *checker) fail(pos Pos, format string, args ...any) {
	if c.err == nil {
		c.err = errorf(pos, format, args...)
	}
}

func (c *checker) expr(e Expr, depth int, top bool) {
	if c.err != nil {
		return
	}
	if e == nil {
		c.fail(Pos{}, "missing expression (nil)")
		return
	}
	c.nodes++
	if c.nodes > MaxNodes {
		c.fail(e.Pos(), "condition too large (more than %d terms)", MaxNodes)
		return
	}
	if depth > MaxDepth {
		c.fail(e.Pos(), "expression nested too deeply (more than %d levels)", MaxDepth)
		return
	}
	switch x := e.(type) {
	case *AllExpr:
		if !top {
			c.fail(x.Start, "'*' (every device) can only be used as the whole condition")
		}
	case *LiteralExpr:
		c.literal(x)
	case *ArrayExpr:
		for _, el := range x.Elems {
			switch el.(type) {
			case *LiteralExpr, *ArrayExpr:
				c.expr(el, depth+1, false)
			default:
				c.fail(x.Start, "array elements must be constants")
			}
		}
	case *RefExpr:
		c.path(x.Start, x.Path)
	case *UnaryExpr:
		if x.Op != OpNot && x.Op != OpNeg {
			c.fail(x.Start, "invalid unary operator %s", x.Op)
		}
		c.expr(x.X, depth+1, false)
	case *BinaryExpr:
		switch {
		case x.Op == OpIn || x.Op == OpNin:
			if _, ok := x.R.(*ArrayExpr); !ok {
				c.fail(x.Start, "%s needs an array constant on its right", x.Op)
			}
		case x.Op.isComparison(), x.Op >= OpAdd && x.Op <= OpMod:
		default:
			c.fail(x.Start, "invalid binary operator %s", x.Op)
		}
		c.expr(x.L, depth+1, false)
		c.expr(x.R, depth+1, false)
	case *LogicalExpr:
		if x.Op != OpAnd && x.Op != OpOr {
			c.fail(x.Start, "invalid logical operator %s", x.Op)
		}
		if len(x.Terms) < 2 {
			c.fail(x.Start, "%s needs at least two terms", x.Op)
		}
		for _, t := range x.Terms {
			c.expr(t, depth+1, false)
		}
	case *CallExpr:
		arity, ok := functions[x.Func]
		switch {
		case !ok:
			c.fail(x.Start, "unknown function %s", x.Func)
		case len(x.Args) != arity:
			c.fail(x.Start, "%s takes %d argument%s, got %d", x.Func, arity, plural(arity), len(x.Args))
		}
		for _, a := range x.Args {
			c.expr(a, depth+1, false)
		}
	case *AggregateExpr:
		c.fail(x.Start, "aggregate %s() can only be used in the SELECT list", x.Func)
	default:
		c.fail(e.Pos(), "unsupported expression type %T", e)
	}
}

func (c *checker) literal(x *LiteralExpr) {
	switch x.Kind {
	case LitString:
		if !utf8.ValidString(x.Str) {
			c.fail(x.Start, "string constant is not valid UTF-8")
		}
	case LitNumber:
		if math.IsNaN(x.Num) || math.IsInf(x.Num, 0) {
			c.fail(x.Start, "number constant %v cannot be written in a query", x.Num)
		}
	case LitBool, LitNull, LitUndefined:
	default:
		c.fail(x.Start, "unsupported constant of Go type %s (use string, bool, nil, a number or json.Number)", x.Invalid)
	}
}

func (c *checker) path(pos Pos, p Path) {
	if len(p) == 0 {
		c.fail(pos, "empty property path")
	}
	for _, s := range p {
		if !isBareName(s) && !canBracket(s) {
			c.fail(pos, "property name %q cannot be written in a query (empty, invalid UTF-8, or contains ']]')", s)
			return
		}
	}
}

// checkQuery validates a statement's structure against the rules the hub
// documents for each collection.
func checkQuery(q *Query) *Error {
	if q == nil {
		return errorf(Pos{}, "missing query (nil)")
	}
	if q.From != Devices && q.From != Modules && q.From != Jobs {
		return errorf(q.Start, "invalid FROM source %d", int(q.From))
	}
	if q.HasTop && q.Top < 0 {
		return errorf(q.Start, "TOP must not be negative")
	}
	if q.Where != nil {
		if _, all := q.Where.(*AllExpr); !all {
			if err := checkLimits(q.Where); err != nil {
				return err
			}
			if err := checkPaths(q.From, q.Where); err != nil {
				return err
			}
		}
	}
	if q.From == Jobs {
		if len(q.Select) > 0 {
			return errorf(q.Select[0].Start, "devices.jobs queries support only SELECT * (no projections or aggregates)")
		}
		if q.GroupBy != nil {
			return errorf(q.GroupBy.Start, "GROUP BY is not supported on devices.jobs")
		}
	}
	var group []string
	if q.GroupBy != nil {
		c := checker{}
		c.path(q.GroupBy.Start, q.GroupBy.Path)
		if c.err != nil {
			return c.err
		}
		var err *Error
		if group, err = resolve(q.From, q.GroupBy); err != nil {
			return err
		}
		if len(q.Select) == 0 {
			return errorf(q.GroupBy.Start, "GROUP BY needs a SELECT list of the grouped property and aggregates, not SELECT *")
		}
	}
	keys := map[string]bool{}
	names := projectionKeys(q)
	hasAgg, hasPlain := false, false
	for i, pr := range q.Select {
		c := checker{}
		switch x := pr.Expr.(type) {
		case *RefExpr:
			hasPlain = true
			c.path(x.Start, x.Path)
			if c.err != nil {
				return c.err
			}
			segs, err := resolve(q.From, x)
			if err != nil {
				return err
			}
			if q.GroupBy != nil && !equalPath(segs, group) {
				return errorf(pr.Start, "%s is neither the GROUP BY property nor an aggregate", x.Path)
			}
		case *AggregateExpr:
			hasAgg = true
			if !aggregates[x.Func] {
				return errorf(pr.Start, "unknown aggregate %s", x.Func)
			}
			if (x.Func == "COUNT") != (x.Arg == nil) {
				if x.Arg == nil {
					return errorf(pr.Start, "%s takes a property path", x.Func)
				}
				return errorf(pr.Start, "COUNT takes no argument: write COUNT()")
			}
			if x.Arg != nil {
				c.path(x.Arg.Start, x.Arg.Path)
				if c.err != nil {
					return c.err
				}
				if _, err := resolve(q.From, x.Arg); err != nil {
					return err
				}
			}
		default:
			return errorf(pr.Start, "a SELECT list holds property paths and aggregates only")
		}
		if pr.Alias != "" && !isBareName(pr.Alias) && !canBracket(pr.Alias) {
			return errorf(pr.Start, "alias %q cannot be written in a query", pr.Alias)
		}
		k := names[i]
		if keys[k] {
			return errorf(pr.Start, "duplicate result property %q; give one of them an alias with AS", k)
		}
		keys[k] = true
	}
	if hasAgg && hasPlain && q.GroupBy == nil {
		return errorf(q.Select[0].Start, "a SELECT list that mixes aggregates and properties needs GROUP BY")
	}
	return nil
}

// checkPaths resolves every property reference of e against the source.
func checkPaths(src Source, e Expr) *Error {
	var err *Error
	walk(e, func(x Expr) bool {
		if r, ok := x.(*RefExpr); ok && err == nil {
			_, err = resolve(src, r)
		}
		return err == nil
	})
	return err
}

func walk(e Expr, f func(Expr) bool) {
	if e == nil || !f(e) {
		return
	}
	switch x := e.(type) {
	case *ArrayExpr:
		for _, el := range x.Elems {
			walk(el, f)
		}
	case *UnaryExpr:
		walk(x.X, f)
	case *BinaryExpr:
		walk(x.L, f)
		walk(x.R, f)
	case *LogicalExpr:
		for _, t := range x.Terms {
			walk(t, f)
		}
	case *CallExpr:
		for _, a := range x.Args {
			walk(a, f)
		}
	}
}

// twinRoot lists the top-level twin properties, matched case-insensitively
// and emitted in this (canonical) case. Twin keys below these are
// case-sensitive, as on the hub.
var twinRoot = canonicalSet(
	"deviceId", "moduleId", "etag", "deviceEtag", "version", "status", "statusReason",
	"statusUpdateTime", "connectionState", "lastActivityTime", "cloudToDeviceMessageCount",
	"authenticationType", "x509Thumbprint", "capabilities", "deviceScope", "parentScopes",
	"modelId", "tags", "properties", "configurations", "$metadata",
)

var twinProperties = canonicalSet("desired", "reported")

// jobFields lists the fields of a devices.jobs row.
var jobFields = canonicalSet(
	"deviceId", "jobId", "jobType", "status", "startTimeUtc", "endTimeUtc",
	"createdDateTimeUtc", "lastUpdatedDateTimeUtc", "outcome", "error",
)

func canonicalSet(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

func canonical(set map[string]string, s string) string {
	if c, ok := set[strings.ToLower(s)]; ok {
		return c
	}
	return s
}

// resolve maps a written path to the document keys it reads: it drops the
// collection prefix (devices., devices.modules., devices.jobs.) and puts
// system names in canonical case.
func resolve(src Source, r *RefExpr) ([]string, *Error) {
	p := r.Path
	is := func(i int, s string) bool { return len(p) > i && strings.EqualFold(p[i], s) }
	if src == Jobs {
		if len(p) < 3 || !is(0, "devices") || !is(1, "jobs") {
			return nil, errorf(r.Start, "devices.jobs queries can only refer to job properties written devices.jobs.<name>, not %s", p)
		}
		out := append([]string(nil), p[2:]...)
		if strings.EqualFold(out[0], "createdTimeUtc") {
			out[0] = "createdDateTimeUtc" // the docs' spelling of the row field
		}
		out[0] = canonical(jobFields, out[0])
		return out, nil
	}
	if is(0, "devices") && len(p) > 1 {
		switch {
		case is(1, "jobs"):
			return nil, errorf(r.Start, "%s refers to devices.jobs; query job properties FROM devices.jobs", p)
		case is(1, "modules") && len(p) > 2:
			if src != Modules {
				return nil, errorf(r.Start, "%s refers to devices.modules; query module properties FROM devices.modules", p)
			}
			p = p[2:]
		default:
			p = p[1:]
		}
	}
	out := append([]string(nil), p...)
	out[0] = canonical(twinRoot, out[0])
	if len(out) > 1 && out[0] == "properties" {
		out[1] = canonical(twinProperties, out[1])
	}
	return out, nil
}

// projectionKeys are the result property names of the SELECT list: the
// alias, else the last segment of the (canonicalised) path, else for an
// aggregate without alias $1, $2, ... counting unnamed aggregates, as
// DocumentDB (the hub's query engine lineage) names unnamed expressions.
func projectionKeys(q *Query) []string {
	keys := make([]string, len(q.Select))
	unnamed := 0
	for i, pr := range q.Select {
		if pr.Alias != "" {
			keys[i] = pr.Alias
			continue
		}
		switch x := pr.Expr.(type) {
		case *RefExpr:
			if segs, err := resolve(q.From, x); err == nil {
				keys[i] = segs[len(segs)-1]
			} else if len(x.Path) > 0 {
				keys[i] = x.Path[len(x.Path)-1]
			}
		default:
			unnamed++
			keys[i] = "$" + strconv.Itoa(unnamed)
		}
	}
	return keys
}
