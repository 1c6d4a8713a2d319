package schema

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// callIn evaluates src, an expression, with the functions of a module in
// dir and the given variables, as the loader does.
func callIn(dir, src string, vars map[string]cty.Value) (cty.Value, hcl.Diagnostics) {
	expr, diags := hclsyntax.ParseExpression([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return expr.Value(&hcl.EvalContext{Functions: functionsAt(dir), Variables: vars})
}

// checkResult evaluates expr in dir and checks it gives want, or an error containing wantErr
// when that is not "".
func checkResult(t *testing.T, dir, expr string, vars map[string]cty.Value, want cty.Value, wantErr string) {
	t.Helper()
	got, diags := callIn(dir, expr, vars)
	switch {
	case wantErr != "" && !strings.Contains(diags.Error(), wantErr):
		t.Errorf("%s: error %q, want %q", expr, diags.Error(), wantErr)
	case wantErr == "" && diags.HasErrors():
		t.Errorf("%s: %s", expr, diags.Error())
	case wantErr == "" && !got.RawEquals(want):
		t.Errorf("%s = %#v, want %#v", expr, got, want)
	}
}

var (
	str = cty.StringVal
	num = cty.NumberIntVal
)

func strList(ss ...string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vs := make([]cty.Value, len(ss))
	for i, s := range ss {
		vs[i] = str(s)
	}
	return cty.ListVal(vs)
}

func numList(ns ...int64) cty.Value {
	vs := make([]cty.Value, len(ns))
	for i, n := range ns {
		vs[i] = num(n)
	}
	return cty.ListVal(vs)
}

// functionCases: every function once or more, called through an HCL
// expression, with the result Terraform's documentation gives for it.
var functionCases = []struct {
	expr string
	want cty.Value
}{
	// Strings.
	{`chomp("line\n")`, str("line")},
	{`endswith("door-7", "-7")`, cty.True},
	{`format("door-%03d", 7)`, str("door-007")},
	{`formatlist("%s-%d", ["a", "b"], 1)`, strList("a-1", "b-1")},
	{`indent(2, "a\nb")`, str("a\n  b")},
	{`join(",", ["a", "b"])`, str("a,b")},
	{`lower("EAST")`, str("east")},
	{`regex("[a-z]+", "123abc")`, str("abc")},
	{`regex("(\\w+)-(\\d+)", "door-007")`, cty.TupleVal([]cty.Value{str("door"), str("007")})},
	{`regexall("\\d", "a1b2")`, strList("1", "2")},
	{`replace("a-b-c", "-", "_")`, str("a_b_c")},
	{`replace("door-007", "/0+(\\d)/", "#$1")`, str("door-#7")},
	{`replace("a/b", "/", "_")`, str("a_b")},
	{`split(",", "a,b")`, strList("a", "b")},
	{`startswith("door-7", "door")`, cty.True},
	{`startswith("door-7", "gate")`, cty.False},
	{`strcontains("door-7", "r-")`, cty.True},
	{`strrev("abc")`, str("cba")},
	{`substr("hello", 1, 3)`, str("ell")},
	{`title("hello world")`, str("Hello World")},
	{`trim("?!hi?!", "!?")`, str("hi")},
	{`trimprefix("door-7", "door-")`, str("7")},
	{`trimspace("  x\n")`, str("x")},
	{`trimsuffix("door-7", "-7")`, str("door")},
	{`upper("east")`, str("EAST")},

	// Collections.
	{`alltrue([])`, cty.True},
	{`alltrue([true, "true"])`, cty.True},
	{`alltrue([true, false])`, cty.False},
	{`anytrue([false, true])`, cty.True},
	{`anytrue([])`, cty.False},
	{`chunklist(["a", "b", "c"], 2)`, cty.ListVal([]cty.Value{strList("a", "b"), strList("c")})},
	{`coalesce("", null, "x")`, str("x")},
	{`coalesce(null, 2, 3)`, num(2)},
	{`coalescelist([], ["a"])`, cty.TupleVal([]cty.Value{str("a")})},
	{`compact(["a", "", null, "b"])`, strList("a", "b")},
	{`concat(["a"], ["b"])`, cty.TupleVal([]cty.Value{str("a"), str("b")})},
	{`contains(["a", "b"], "b")`, cty.True},
	{`distinct(["a", "a", "b"])`, strList("a", "b")},
	{`element(["a", "b", "c"], 4)`, str("b")},
	{`flatten([["a"], [["b"]]])`, cty.TupleVal([]cty.Value{str("a"), str("b")})},
	{`index(["a", "b"], "b")`, num(1)},
	{`keys({ b = 1, a = 2 })`, cty.TupleVal([]cty.Value{str("a"), str("b")})},
	{`length("héllo")`, num(5)},
	{`length(["a", "b"])`, num(2)},
	{`length({ a = 1, b = "x" })`, num(2)},
	{`length(tomap({ a = 1 }))`, num(1)},
	{`lookup({ a = 1 }, "b", 0)`, num(0)},
	{`merge({ a = 1, b = 1 }, { b = 2 })`, cty.ObjectVal(map[string]cty.Value{"a": num(1), "b": num(2)})},
	{`one([])`, cty.NullVal(cty.DynamicPseudoType)},
	{`one(["x"])`, str("x")},
	{`one(tolist([]))`, cty.NullVal(cty.DynamicPseudoType)},
	{`range(3)`, numList(0, 1, 2)},
	{`reverse(["a", "b"])`, cty.TupleVal([]cty.Value{str("b"), str("a")})},
	{`setintersection(["a", "b"], ["b", "c"])`, cty.SetVal([]cty.Value{str("b")})},
	{`setproduct(["a"], ["x", "y"])`, cty.ListVal([]cty.Value{cty.TupleVal([]cty.Value{str("a"), str("x")}), cty.TupleVal([]cty.Value{str("a"), str("y")})})},
	{`setsubtract(["a", "b"], ["b"])`, cty.SetVal([]cty.Value{str("a")})},
	{`setunion(["a"], ["b"])`, cty.SetVal([]cty.Value{str("a"), str("b")})},
	{`slice(["a", "b", "c"], 1, 3)`, cty.TupleVal([]cty.Value{str("b"), str("c")})},
	{`sort(["b", "a"])`, strList("a", "b")},
	{`sum([1, 2, 3.5])`, cty.NumberFloatVal(6.5)},
	{`transpose({ a = ["x", "y"], b = ["x"] })`, cty.MapVal(map[string]cty.Value{"x": strList("a", "b"), "y": strList("a")})},
	{`values({ a = 1, b = 2 })`, cty.TupleVal([]cty.Value{num(1), num(2)})},
	{`zipmap(["a", "b"], [1, 2])`, cty.ObjectVal(map[string]cty.Value{"a": num(1), "b": num(2)})},

	// Encoding.
	{`base64decode("aGk=")`, str("hi")},
	{`base64encode("hi")`, str("aGk=")},
	{`csvdecode("a,b\n1,2\n")`, cty.ListVal([]cty.Value{cty.ObjectVal(map[string]cty.Value{"a": str("1"), "b": str("2")})})},
	{`jsondecode("{\"a\": [1]}")`, cty.ObjectVal(map[string]cty.Value{"a": cty.TupleVal([]cty.Value{num(1)})})},
	{`jsonencode({ a = 1 })`, str(`{"a":1}`)},
	{`urlencode("a b&c")`, str("a+b%26c")},
	{`yamldecode("a: [1, x]")`, cty.ObjectVal(map[string]cty.Value{"a": cty.TupleVal([]cty.Value{num(1), str("x")})})},
	{`yamlencode({ a = 1 })`, str("\"a\": 1\n")},

	// Numbers.
	{`abs(-3)`, num(3)},
	{`ceil(1.2)`, num(2)},
	{`floor(1.8)`, num(1)},
	{`log(1, 10)`, num(0)},
	{`max(1, 5, 3)`, num(5)},
	{`min(1, 5, 3)`, num(1)},
	{`parseint("ff", 16)`, num(255)},
	{`pow(2, 10)`, num(1024)},
	{`signum(-5)`, num(-1)},

	// Dates and times.
	{`formatdate("YYYY-MM-DD hh:mm", "2024-05-01T12:30:00Z")`, str("2024-05-01 12:30")},
	{`timeadd("2024-05-01T12:00:00Z", "90m")`, str("2024-05-01T13:30:00Z")},
	{`timecmp("2024-05-01T12:00:00Z", "2024-05-01T13:00:00+02:00")`, num(1)},
	{`timecmp("2024-05-01T12:00:00Z", "2024-05-01T14:00:00+02:00")`, num(0)},
	{`timecmp("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.5Z")`, num(-1)},

	// Hashes (checked against openssl dgst).
	{`base64sha256("hello")`, str("LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")},
	{`base64sha512("hello")`, str("m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw==")},
	{`md5("hello")`, str("5d41402abc4b2a76b9719d911017c592")},
	{`sha1("hello")`, str("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")},
	{`sha256("hello")`, str("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")},
	{`sha512("hello")`, str("9b71d224bd62f3785d96d46ad3ea3d73319bfbc2890caadae2dff72519673ca72323c3d99ba5c11d7c7acc6e14b8c5da0c4663475c2e5c3adef46f73bcdec043")},

	// Type conversions, try and can, quote.
	{`tobool("true")`, cty.True},
	{`tolist(["a", "b"])`, strList("a", "b")},
	{`tomap({ a = "x" })`, cty.MapVal(map[string]cty.Value{"a": str("x")})},
	{`tonumber("5")`, num(5)},
	{`toset(["b", "a", "b"])`, cty.SetVal([]cty.Value{str("a"), str("b")})},
	{`tostring(5)`, str("5")},
	{`tostring(null)`, cty.NullVal(cty.String)},
	{`try(tonumber("x"), 0)`, num(0)},
	{`can(tonumber("x"))`, cty.False},
	{`can(tonumber("1"))`, cty.True},
	{`quote("a'b")`, str(`'a\'b'`)},
}

func TestFunctions(t *testing.T) {
	for _, tc := range functionCases {
		got, diags := callIn(".", tc.expr, nil)
		if diags.HasErrors() {
			t.Errorf("%s: %s", tc.expr, diags.Error())
			continue
		}
		if !got.RawEquals(tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.expr, got, tc.want)
		}
	}
}

// TestFunctionsCovered: every function has a case in functionCases, the
// table holds none of the impure functions, and FunctionNames lists the
// table's names in order.
func TestFunctionsCovered(t *testing.T) {
	names := FunctionNames()
	if !slices.IsSorted(names) {
		t.Errorf("FunctionNames not sorted: %v", names)
	}
	table := functionsAt(t.TempDir())
	if len(table) != len(names) {
		t.Errorf("FunctionNames has %d names, the table %d", len(names), len(table))
	}
	tested := map[string]bool{"file": true, "filebase64": true, "fileexists": true, "templatefile": true} // TestFileFunctions, TestTemplateFile
	for _, tc := range functionCases {
		tested[tc.expr[:strings.Index(tc.expr, "(")]] = true
	}
	for _, n := range names {
		if !tested[n] {
			t.Errorf("%s has no case in functionCases", n)
		}
	}
	for _, impure := range []string{"timestamp", "plantimestamp", "uuid", "uuidv5", "bcrypt"} {
		if slices.Contains(names, impure) {
			t.Errorf("%s is provided; a plan must not depend on when or where it runs", impure)
		}
	}
}

// TestFunctionsDocumented: docs/language.md's Functions section names
// every function, and no other.
func TestFunctionsDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "language.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	start := strings.Index(s, "\n## Functions\n")
	if start < 0 {
		t.Fatal("docs/language.md has no ## Functions section")
	}
	s = s[start+1:]
	if end := strings.Index(s, "\n## "); end >= 0 {
		s = s[:end]
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9]+)\\(").FindAllStringSubmatch(s, -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	documented = slices.Compact(documented)
	if names := FunctionNames(); !slices.Equal(documented, names) {
		t.Errorf("documented functions differ from FunctionNames:\ndoc:  %v\ncode: %v", documented, names)
	}
}

// TestFunctionErrors: a failing call is an error diagnostic whose subject
// starts inside the text `at` (the offending argument, or the call when
// the error concerns no one argument) and whose detail says why.
func TestFunctionErrors(t *testing.T) {
	for _, tc := range []struct{ expr, detail, at string }{
		{`tonumber("abc")`, `cannot convert "abc" to number`, `"abc"`},
		{`index(["a"], "b")`, "no element equal", `"b"`},
		{`one(["a", "b"])`, "at most one element", `["a", "b"]`},
		{`one(tolist(["a", "b"]))`, "at most one element", `tolist`},
		{`sum([])`, "empty list", `[]`},
		{`sum(["a"])`, "numbers only", `["a"]`},
		{`base64decode("!!")`, "not valid Base64", `"!!"`},
		{`base64decode("//4=")`, "not UTF-8", `"//4="`},
		{`timecmp("2024-05-01T12:00:00Z", "yesterday")`, "RFC 3339", `"yesterday"`},
		{`coalesce(null, "")`, "every argument is null or an empty string", `coalesce(`},
		{`length(5)`, "length takes a string", `5`},
		{`replace("x", "/(/", "y")`, "missing closing )", `replace(`},
		{`jsondecode("{")`, "", `jsondecode(`},
		{`yamldecode("a: [")`, "", `yamldecode(`},
		{`parseint("zz", 10)`, `cannot parse "zz"`, `"zz"`},
		{`transpose({ a = [null] })`, "null string", `{ a = [null] }`},
		{`lookup({ a = 1 }, "b")`, `Missing value for "default"`, `)`},
		{`upper()`, `Missing value for "str"`, `)`},
		{`index({ a = 1 }, 1)`, "index takes a list or tuple", `{ a = 1 }`},
		{`timestamp()`, `There is no function named "timestamp"`, `timestamp`},
		{`log(-1, 10)`, "not a number", `log(`},
		{`indent(-1, "a")`, "cannot handle these arguments (strings: negative Repeat count)", `indent(`},
	} {
		_, diags := callIn(".", tc.expr, nil)
		if !diags.HasErrors() {
			t.Errorf("%s: no error", tc.expr)
			continue
		}
		d := diags[0]
		if !strings.Contains(d.Detail, tc.detail) {
			t.Errorf("%s: detail %q lacks %q", tc.expr, d.Detail, tc.detail)
		}
		at := strings.Index(tc.expr, tc.at)
		if d.Subject == nil || d.Subject.Start.Byte < at || d.Subject.Start.Byte >= at+len(tc.at) {
			t.Errorf("%s: subject %v does not start in %q (byte %d)", tc.expr, d.Subject, tc.at, at)
		}
	}
}

// testSecret is a sensitive value that every parser rejects: not a
// number, bool, regexp, JSON, YAML, CSV, Base64, timestamp or file.
const testSecret = `s3cret-(: [{"`

func sensitiveVars() map[string]cty.Value {
	return map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{
		"secret":  str(testSecret).Mark(sensitiveMark),
		"path":    str("hello.txt").Mark(sensitiveMark),
		"n":       num(3).Mark(sensitiveMark),
		"flag":    cty.True.Mark(sensitiveMark),
		"unknown": cty.UnknownVal(cty.String).Mark(sensitiveMark),
	})}
}

// TestFunctionsKeepMarks: a result computed from a sensitive value is
// sensitive too (go-cty's function.Call re-marks results; the guard and
// our own functions must not lose that).
func TestFunctionsKeepMarks(t *testing.T) {
	for _, expr := range []string{
		`upper(var.secret)`,
		`upper(var.unknown)`,
		`length(var.secret)`,
		`format("x-%s", var.secret)`,
		`join(",", [var.secret, "a"])`,
		`sha256(var.secret)`,
		`base64encode(var.secret)`,
		`replace(var.secret, "/s/", "S")`,
		`startswith(var.secret, "s")`,
		`coalesce("", var.secret)`,
		`one([var.secret])`,
		`index(["a", var.secret], "a")`,
		`jsonencode({ a = var.secret })`,
		`yamlencode({ a = var.secret })`,
		`tostring(var.n)`,
		`sum([var.n, 1])`,
		`alltrue([var.flag])`,
		`transpose({ a = [var.secret] })`,
		`lookup({ a = var.secret }, "a", "")`,
		`merge({ a = var.secret }, { b = 1 })`,
		`try(var.secret, "x")`,
		`file(var.path)`,
		`fileexists(var.path)`,
		`templatefile("tags.tmpl", { names = [var.secret], site = "x" })`,
		`templatefile("list.tmpl", { ids = [var.secret] })`,
	} {
		got, diags := callIn(filepath.Join("testdata", "functions"), expr, sensitiveVars())
		if diags.HasErrors() {
			t.Errorf("%s: %s", expr, diags.Error())
			continue
		}
		if _, marks := got.UnmarkDeep(); !marks.Has(sensitiveMark) {
			t.Errorf("%s = %#v: not sensitive", expr, got)
		}
	}
}

// TestFunctionErrorsHideSensitive: an error from a call with a sensitive
// argument never shows the value, though go-cty's own messages quote it
// (the first case shows that they do, so the test can fail).
func TestFunctionErrorsHideSensitive(t *testing.T) {
	_, diags := callIn(".", fmt.Sprintf("tonumber(%q)", testSecret), nil)
	if !strings.Contains(diags.Error(), "s3cret") {
		t.Fatalf("tonumber's error no longer quotes its argument, so this test proves nothing: %s", diags.Error())
	}
	for _, expr := range []string{
		`tonumber(var.secret)`,
		`tobool(var.secret)`,
		`parseint(var.secret, 10)`,
		`jsondecode(var.secret)`,
		`yamldecode(var.secret)`,
		`csvdecode(var.secret)`,
		`base64decode(var.secret)`,
		`formatdate("YYYY", var.secret)`,
		`timeadd(var.secret, "1h")`,
		`timeadd("2024-05-01T12:00:00Z", var.secret)`,
		`timecmp(var.secret, "2024-05-01T12:00:00Z")`,
		`regex(var.secret, "x")`,
		`replace("x", "/${var.secret}/", "y")`,
		`format("%d", var.secret)`,
		`file(var.secret)`,
		`fileexists("${var.secret}\x00")`,
		`index([var.secret], "zz")`,
		`templatefile(var.secret, {})`,
		`templatefile("missing.tmpl", { site = var.secret })`,
		`templatefile("tags.tmpl", { names = var.secret, site = "x" })`,
	} {
		_, diags := callIn(filepath.Join("testdata", "functions"), expr, sensitiveVars())
		if !diags.HasErrors() {
			t.Errorf("%s: no error", expr)
			continue
		}
		for _, d := range diags {
			if strings.Contains(d.Summary+d.Detail, "s3cret") {
				t.Errorf("%s: the diagnostic shows the secret: %s: %s", expr, d.Summary, d.Detail)
			}
		}
	}
}

// TestFunctionsNeverPanic calls every function with every combination of
// awkward arguments (nulls, unknowns, wrong types, infinities, marks) up to
// three arguments: no call may panic, return nothing, or report a
// recovered panic (a stack trace in a diagnostic).
func TestFunctionsNeverPanic(t *testing.T) {
	samples := []cty.Value{
		cty.NullVal(cty.DynamicPseudoType), cty.DynamicVal, cty.UnknownVal(cty.String),
		cty.NullVal(cty.String), str(""), str("a,b"), str("%d"), num(-1), cty.NumberFloatVal(1.5),
		cty.PositiveInfinity, cty.True, cty.EmptyTupleVal,
		cty.TupleVal([]cty.Value{num(1), str("a"), cty.NullVal(cty.String)}),
		strList("x"), cty.ObjectVal(map[string]cty.Value{"a": num(1)}),
		cty.MapVal(map[string]cty.Value{"k": strList("v")}), str("m").Mark(sensitiveMark),
		cty.SetVal([]cty.Value{cty.UnknownVal(cty.Number), num(2)}),
	}
	third := []cty.Value{cty.NullVal(cty.DynamicPseudoType), cty.DynamicVal, num(1), str("x")}
	dir := t.TempDir()
	table := functionsAt(dir)
	for _, name := range FunctionNames() {
		maxArgs := min(len(table[name].Params())+1, 3)
		if table[name].VarParam() != nil {
			maxArgs = 3
		}
		for n := 0; n <= maxArgs; n++ {
			args := make([]string, n)
			for i := range args {
				args[i] = fmt.Sprintf("v%d", i)
			}
			expr, diags := hclsyntax.ParseExpression([]byte(name+"("+strings.Join(args, ", ")+")"), "t.hcl", hcl.InitialPos)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			forEachArgs(n, samples, third, func(vars map[string]cty.Value) {
				checkCall(t, name, expr, &hcl.EvalContext{Functions: table, Variables: vars})
			})
		}
	}
}

// forEachArgs calls f with variables v0…v(n-1) set to every combination
// of samples (the third from the shorter list, to bound the run time).
func forEachArgs(n int, samples, third []cty.Value, f func(map[string]cty.Value)) {
	var rec func(i int, vars map[string]cty.Value)
	rec = func(i int, vars map[string]cty.Value) {
		if i == n {
			f(vars)
			return
		}
		from := samples
		if i == 2 {
			from = third
		}
		for _, v := range from {
			vars[fmt.Sprintf("v%d", i)] = v
			rec(i+1, vars)
		}
	}
	rec(0, map[string]cty.Value{})
}

func checkCall(t *testing.T, name string, expr hcl.Expression, ctx *hcl.EvalContext) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s with %#v panicked: %v", name, ctx.Variables, r)
		}
	}()
	v, diags := expr.Value(ctx)
	if msg := diags.Error(); strings.Contains(msg, "panic") || strings.Contains(msg, "goroutine") {
		t.Errorf("%s with %#v: %s", name, ctx.Variables, msg)
	}
	if v == cty.NilVal {
		t.Errorf("%s with %#v returned no value", name, ctx.Variables)
	}
}

// TestFileFunctions: paths are relative to the module's directory, not the
// process's; absolute paths are used as they are; large, binary, missing
// and non-regular files are errors naming the path.
func TestFileFunctions(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"a.txt":     "hi\n",
		"bin.dat":   "\xff\xfe",
		"big.txt":   strings.Repeat("x", maxFileSize+1),
		"max.txt":   strings.Repeat("x", maxFileSize),
		"sub/b.txt": "b",
	} {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vars := map[string]cty.Value{"abs": str(filepath.Join(dir, "sub", "b.txt"))}
	for _, tc := range []struct {
		expr string
		want cty.Value
		err  string
	}{
		{expr: `file("a.txt")`, want: str("hi\n")},
		{expr: `file("sub/b.txt")`, want: str("b")},
		{expr: `file("sub/../a.txt")`, want: str("hi\n")},
		{expr: `file(abs)`, want: str("b")},
		{expr: `length(file("max.txt"))`, want: num(maxFileSize)},
		{expr: `filebase64("bin.dat")`, want: str("//4=")},
		{expr: `fileexists("a.txt")`, want: cty.True},
		{expr: `fileexists("nope.txt")`, want: cty.False},
		{expr: `fileexists("sub")`, err: "sub is not a regular file"},
		{expr: `file("nope.txt")`, err: "no file exists at " + filepath.Join(dir, "nope.txt")},
		{expr: `file("functions_test.go")`, err: "no file exists at " + filepath.Join(dir, "functions_test.go")},
		{expr: `file("big.txt")`, err: "big.txt is larger than 4 MiB"},
		{expr: `filebase64("big.txt")`, err: "larger than 4 MiB"},
		{expr: `file("bin.dat")`, err: "bin.dat is not UTF-8 text; use filebase64"},
		{expr: `file("sub")`, err: "is not a regular file"},
		{expr: `file("")`, err: "is not a regular file"},
	} {
		checkResult(t, dir, tc.expr, vars, tc.want, tc.err)
	}
}

// TestTemplateFile renders the templates in testdata/functions: they may
// call functions (file relative to the module too) but not templatefile,
// and see only the variables they are given.
func TestTemplateFile(t *testing.T) {
	dir := filepath.Join("testdata", "functions")
	vars := map[string]cty.Value{"unknown": cty.DynamicVal}
	for _, tc := range []struct {
		expr string
		want cty.Value
		err  string
	}{
		{expr: `templatefile("tags.tmpl", { names = ["a", "b"], site = "x" })`, want: str("A@x\nB@x\n")},
		{expr: `templatefile("tags.tmpl", tomap({ names = ["a"], site = ["x"] }))`, err: "Invalid template interpolation value"},
		{expr: `templatefile("list.tmpl", { ids = ["a"] })`, want: cty.TupleVal([]cty.Value{str("a")})},
		{expr: `templatefile("nested_file.tmpl", {})`, want: str("header: hello, world")},
		{expr: `templatefile("tags.tmpl", unknown)`, want: cty.DynamicVal},
		{expr: `templatefile("tags.tmpl", { names = unknown, site = "x" })`, want: cty.UnknownVal(cty.String).RefineNotNull()},
		{expr: `templatefile("recursive.tmpl", {})`, err: "templatefile cannot be called from inside a template"},
		{expr: `templatefile("missing.tmpl", { site = "x" })`, err: `vars has no "owner", which the template uses at ` + filepath.Join(dir, "missing.tmpl") + ":1,22-27"},
		{expr: `templatefile("broken.tmpl", {})`, err: filepath.Join(dir, "broken.tmpl") + ":1,"},
		{expr: `templatefile("null.tmpl", {})`, err: "the template's result is null"},
		{expr: `templatefile("tags.tmpl", "x")`, err: "vars must be a map or object, not string"},
		{expr: `templatefile("tags.tmpl", { "a b" = 1 })`, err: `"a b" cannot be a template variable`},
		{expr: `templatefile("nope.tmpl", {})`, err: "no file exists at " + filepath.Join(dir, "nope.tmpl")},
	} {
		checkResult(t, dir, tc.expr, vars, tc.want, tc.err)
	}
}
