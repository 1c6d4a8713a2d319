// Package corpus runs a committed corpus of malformed inputs (issue 12, "Bad input to the
// hub") against the local hub and iotplan's parsers: REST bodies and headers, queries,
// connection strings, fleet files, MQTT connections and packets, and iotplan configurations.
//
// Each case is one file under testdata/<kind>/. Its leading lines that start with "#" are the
// header: "# @name value" lines are directives (the expectation first of all, "# @expect …"),
// other "#" lines say why the case exists. The rest of the file is the input. REST, query,
// connection-string and MQTT inputs are Go text/template text, so a case can describe a large
// input ({{repeat "x" 10485760}} is a 10 MB body) instead of committing it; fleet and
// configuration cases are HCL files used as they are (their header lines are HCL comments).
//
// Every case checks its expected status or error, that nothing panicked, that the hub still
// serves (a valid request after each hub case succeeds), and, where the case says so, that
// nothing partial was stored (@unchanged, @absent). The hub-facing kinds share one hub,
// started in-process on loopback with an MQTT endpoint (internal/hub/hubtest).
package corpus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"testing"
	"text/template"
)

// A testCase is one corpus file.
type testCase struct {
	path  string
	name  string              // file name without extension
	dirs  map[string][]string // directive → values, in file order
	input []byte              // the file after its header
	whole []byte              // the whole file (HCL kinds)
}

// kinds are the corpus kinds, each a directory of testdata and its runner's known directives.
var kinds = map[string][]string{
	"rest":    {"expect", "request", "header", "auth", "api-version", "unchanged", "absent", "message"},
	"query":   {"expect", "page-size", "continuation", "raw-body", "message", "header"},
	"connstr": {"parse", "client", "call"},
	"fleet":   {"expect"},
	"config":  {"expect", "var"},
	"mqtt":    {"expect", "connect", "subscribe", "publish", "raw", "unchanged"},
}

// minCases is the corpus size the issue asks for.
const minCases = 150

func loadCases(t *testing.T, kind string) []*testCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", kind, "*"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	known := map[string]bool{}
	for _, d := range kinds[kind] {
		known[d] = true
	}
	var out []*testCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := &testCase{path: f, name: strings.TrimSuffix(filepath.Base(f), filepath.Ext(f)), dirs: map[string][]string{}, whole: b}
		rest := b
		for len(rest) > 0 && rest[0] == '#' {
			line, after, _ := bytes.Cut(rest, []byte("\n"))
			rest = after
			l := strings.TrimRight(string(line), "\r")
			if d, ok := strings.CutPrefix(l, "# @"); ok {
				name, val, _ := strings.Cut(d, " ")
				if !known[name] {
					t.Fatalf("%s: unknown directive @%s (known: %v)", f, name, kinds[kind])
				}
				c.dirs[name] = append(c.dirs[name], strings.TrimSpace(val))
			}
		}
		c.input = rest
		if len(c.dirs) == 0 {
			t.Fatalf("%s: no # @ directives; every case states its expectation", f)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		t.Fatalf("no cases in testdata/%s", kind)
	}
	return out
}

func (c *testCase) dir(name string) string {
	if v := c.dirs[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// render executes the case's input as a template with the harness's functions and data.
func (c *testCase) render(t *testing.T, funcs template.FuncMap, data any) []byte {
	t.Helper()
	tpl, err := template.New(c.name).Funcs(baseFuncs).Funcs(funcs).Parse(string(c.input))
	if err != nil {
		t.Fatalf("%s: template: %v", c.path, err)
	}
	var b bytes.Buffer
	if err := tpl.Execute(&b, data); err != nil {
		t.Fatalf("%s: template: %v", c.path, err)
	}
	return b.Bytes()
}

// renderString renders a directive value with the same functions.
func renderString(t *testing.T, s string, funcs template.FuncMap, data any) string {
	t.Helper()
	tpl, err := template.New("directive").Funcs(baseFuncs).Funcs(funcs).Parse(s)
	if err != nil {
		t.Fatalf("directive %q: %v", s, err)
	}
	var b strings.Builder
	if err := tpl.Execute(&b, data); err != nil {
		t.Fatalf("directive %q: %v", s, err)
	}
	return b.String()
}

// baseFuncs describe large or deep inputs instead of committing them.
var baseFuncs = template.FuncMap{
	"repeat": strings.Repeat,
	// nest is n objects, each the only member "a" of its parent, around leaf.
	"nest": func(n int, leaf string) string {
		return strings.Repeat(`{"a":`, n) + leaf + strings.Repeat("}", n)
	},
	// nestArr is n arrays around leaf.
	"nestArr": func(n int, leaf string) string {
		return strings.Repeat("[", n) + leaf + strings.Repeat("]", n)
	},
	// keys is a JSON object's members "k0":"<size x>", … "k{n-1}" (without braces).
	"keys": func(n, size int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"k%d":"%s"`, i, strings.Repeat("x", size))
		}
		return strings.Join(parts, ",")
	},
	"ctl": func(r int) string { return string(rune(r)) },
	// byte is one raw byte, e.g. invalid UTF-8.
	"byte": func(b int) string { return string([]byte{byte(b)}) },
}

// safely runs fn and turns a panic into a test failure naming the case, so one bad case does
// not hide the others.
func safely(t *testing.T, c *testCase, fn func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("%s: panic: %v\n%s", c.path, r, debug.Stack())
		}
	}()
	fn()
}

// TestCorpusSize: the corpus keeps at least minCases cases, each kind at least a few.
func TestCorpusSize(t *testing.T) {
	total := 0
	for kind := range kinds {
		n := len(loadCases(t, kind))
		t.Logf("%s: %d cases", kind, n)
		total += n
	}
	if total < minCases {
		t.Errorf("corpus has %d cases, want at least %d", total, minCases)
	}
}
