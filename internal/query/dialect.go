package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Dialect selects the language the parser accepts.
//
// Documented is what Microsoft documents for twin and job queries: the grammar and functions
// of https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-query-language, the examples
// of https://learn.microsoft.com/azure/iot-hub/query-twins and
// https://learn.microsoft.com/azure/iot-hub/query-jobs, plus STARTSWITH, which the hub accepts
// (https://github.com/MicrosoftDocs/azure-docs/issues/110329) and Azure IoT Explorer sends
// (Azure/azure-iot-explorer src/app/api/shared/utils.ts, queryToString). Where the documents
// are silent the Documented dialect rejects: docs/query.md lists every construct with its
// source and every choice.
//
// Extended is the Documented dialect plus what this package accepted before dialects existed:
// the IS_* type checks other than IS_DEFINED, ENDSWITH, TOP with GROUP BY, TOP(n), numbers
// with an exponent, .5 and 0X…, JSON's extra string escapes (\/ \b \f \n \r \t), a doubled
// quote inside a string, unary minus on an expression, the empty array [], and aggregates
// and GROUP BY on devices.modules. Azure may reject any of these.
//
// Compile and CompileCondition compile trees of either dialect: the dialect is a property of
// text, enforced by the Parse functions, and of composed trees, checked by CheckCondition and
// CheckQuery before text is sent to a hub.
type Dialect uint8

const (
	// Documented is the zero value and the default of Parse and ParseCondition.
	Documented Dialect = iota
	// Extended is the Documented dialect and the extensions above.
	Extended
)

// String is the dialect's name as `iotplan dev --query-dialect` takes it.
func (d Dialect) String() string {
	switch d {
	case Documented:
		return "documented"
	case Extended:
		return "extended"
	}
	return "dialect(" + strconv.Itoa(int(d)) + ")"
}

// Set sets d from its name, "documented" or "extended" (any case), so a Dialect can be a
// command-line flag value.
func (d *Dialect) Set(name string) error {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "documented":
		*d = Documented
	case "extended":
		*d = Extended
	default:
		return fmt.Errorf("unknown query dialect %q: want documented or extended", name)
	}
	return nil
}

// ErrUndocumented is what an *Error about a construct the Documented dialect rejects (and the
// Extended dialect accepts) wraps: errors.Is(err, ErrUndocumented) tells it from a query that
// no dialect accepts.
var ErrUndocumented = errors.New("query: not in IoT Hub's documented query language")

// extendedHint ends every ErrUndocumented message: the local hub's switch to accept it.
const extendedHint = "; iotplan dev --query-dialect extended accepts it"

// undocumentedf is a positioned ErrUndocumented error.
func undocumentedf(pos Pos, format string, args ...any) *Error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...) + extendedHint, undocumented: true}
}

// documentedFunctions are the functions of the Documented dialect: IS_DEFINED ("When querying
// twins and jobs the only supported function", iot-hub-devguide-query-language) and
// STARTSWITH (MicrosoftDocs/azure-docs#110329).
var documentedFunctions = map[string]bool{"IS_DEFINED": true, "STARTSWITH": true}

// The messages of the Documented dialect's rejections, shared by the parser (text) and the
// tree checks (builders).
func errFunction(pos Pos, name string) *Error {
	return undocumentedf(pos, "%s is not in IoT Hub's documented query language for twins and jobs (only IS_DEFINED, and STARTSWITH as reported working)", name)
}

func errTopGroupBy(pos Pos) *Error {
	return undocumentedf(pos, "TOP with GROUP BY is not in IoT Hub's documented query language (the docs do not say whether TOP limits the groups or the twins)")
}

func errTopParen(pos Pos) *Error {
	return undocumentedf(pos, "TOP(n) with parentheses is not in IoT Hub's documented query language (write TOP n)")
}

func errUnaryMinus(pos Pos) *Error {
	return undocumentedf(pos, "a minus sign before an expression is not in IoT Hub's documented query language (only a number constant may be negative)")
}

func errEmptyArray(pos Pos) *Error {
	return undocumentedf(pos, "an empty array [] is not in IoT Hub's documented query language (an array constant holds at least one constant)")
}

func errModulesGroupBy(pos Pos) *Error {
	return undocumentedf(pos, "GROUP BY on devices.modules is not in IoT Hub's documented query language (GROUP BY is documented for device twins only)")
}

func errModulesAggregate(pos Pos) *Error {
	return undocumentedf(pos, "aggregates on devices.modules are not in IoT Hub's documented query language (aggregates are documented for device twins only)")
}

// checkDocumented reports the first construct of a condition tree that the Documented
// dialect does not have. Format prints numbers in plain decimal and strings with documented
// escapes only, so literals are always documented; the tree's calls, unary minus and empty
// arrays may not be (a builder can make any of them).
func checkDocumented(e Expr) *Error {
	var err *Error
	walk(e, func(x Expr) bool {
		if err != nil {
			return false
		}
		switch x := x.(type) {
		case *CallExpr:
			if !documentedFunctions[x.Func] {
				err = errFunction(x.Start, x.Func)
			}
		case *UnaryExpr:
			if x.Op == OpNeg {
				err = errUnaryMinus(x.Start)
			}
		case *ArrayExpr:
			if len(x.Elems) == 0 {
				err = errEmptyArray(x.Start)
			}
		}
		return err == nil
	})
	return err
}

// checkQueryDocumented reports what the Documented dialect does not have in a statement's
// structure: TOP with GROUP BY, and aggregates or GROUP BY on devices.modules ("the GROUP BY
// clause is only supported when querying device twins"; "selection clauses different than
// SELECT * are only supported in aggregate queries on device twins", with projections on
// module twins documented by ADM's metric example SELECT deviceId, moduleId FROM
// devices.modules, iot-hub-automatic-device-management). It is the one check of these for
// text (ParseDialect, after checkQuery, with topPos where TOP was written) and for trees
// (CheckQuery, with topPos the statement's start).
func checkQueryDocumented(q *Query, topPos Pos) *Error {
	if q.HasTop && q.GroupBy != nil {
		return errTopGroupBy(topPos)
	}
	if q.From != Modules {
		return nil
	}
	for _, pr := range q.Select {
		if _, agg := pr.Expr.(*AggregateExpr); agg {
			return errModulesAggregate(pr.Start)
		}
	}
	if q.GroupBy != nil {
		return errModulesGroupBy(q.GroupBy.Start)
	}
	return nil
}
