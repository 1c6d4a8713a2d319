// Package docimports checks the "Imports:" lines of the module's package documentation
// against the imports the packages' files really have, so that a line that says what a package
// may depend on stays true (a package doc is read as a statement about the code).
package docimports

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// root is the module root, two levels above this directory.
const root = "../.."

// Every package whose doc has an "Imports:" line lists exactly the packages it imports
// outside the standard library ("stdlib" stands for the standard library, "x/..." for every
// package under x).
func TestImportsLinesAreTrue(t *testing.T) {
	checked := 0
	for dir, pkg := range modulePackages(t) {
		if pkg.line == "" {
			continue
		}
		checked++
		for _, problem := range importsProblems(pkg) {
			t.Errorf("%s: %s", dir, problem)
		}
	}
	if checked == 0 {
		t.Fatal("no package documentation has an Imports line: the test reads nothing")
	}
}

// importsProblems compares a package's Imports line with its imports.
func importsProblems(pkg *pkgInfo) []string {
	var out []string
	listed := parseImportsLine(pkg.line)
	for _, x := range listed {
		if !slices.ContainsFunc(pkg.imports, func(p string) bool { return matches(x, p) }) {
			out = append(out, fmt.Sprintf("the doc's Imports line lists %q, which no file of the package imports", x))
		}
	}
	for _, p := range pkg.imports {
		if !isStd(p) && !slices.ContainsFunc(listed, func(x string) bool { return matches(x, p) }) {
			out = append(out, fmt.Sprintf("imports %s, which the doc's Imports line does not list", p))
		}
	}
	return out
}

// The line's grammar, on made-up lines; and a package whose line is wrong both ways.
func TestImportsProblems(t *testing.T) {
	pkg := &pkgInfo{line: " a, hub/b, stdlib.", imports: []string{"fmt", "example.com/m/hub/b", "example.com/c"}}
	got := importsProblems(pkg)
	if len(got) != 2 || !strings.Contains(got[0], `"a"`) || !strings.Contains(got[1], "example.com/c") {
		t.Errorf("importsProblems = %q, want a listed-not-imported and an imported-not-listed problem", got)
	}
}

// The line's grammar, on made-up lines.
func TestParseImportsLine(t *testing.T) {
	for in, want := range map[string][]string{
		"a, b/c (why), stdlib.":                       {"a", "b/c"},
		"internal/hub/..., x (its (nested) part), y.": {"internal/hub/...", "x", "y"},
		"paho.mqtt.golang, hcl/v2. Never z, w.":       {"paho.mqtt.golang", "hcl/v2"},
		"stdlib only.":                                nil,
	} {
		if got := parseImportsLine(in); !slices.Equal(got, want) {
			t.Errorf("parseImportsLine(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		item, path string
		want       bool
	}{
		{"registry", "github.com/iotplan/iotplan/internal/hub/registry", true},
		{"hub/link", "github.com/iotplan/iotplan/internal/hub/link", true},
		{"internal/hub/...", "github.com/iotplan/iotplan/internal/hub/link", true},
		{"internal/hub/...", "github.com/iotplan/iotplan/internal/hubapi", false},
		{"mochi-mqtt", "github.com/mochi-mqtt/server/v2/packets", true},
		{"hcl/v2", "github.com/hashicorp/hcl/v2", true},
		{"sas", "github.com/iotplan/iotplan/internal/safetext", false},
	} {
		if got := matches(c.item, c.path); got != c.want {
			t.Errorf("matches(%q, %q) = %v", c.item, c.path, got)
		}
	}
}

type pkgInfo struct {
	line    string   // the text after "Imports:" in the package doc, "" if none
	imports []string // of the package's non-test files
}

// modulePackages parses the non-test Go files of every directory of the module (not test/,
// testdata or node_modules), keyed by directory.
func modulePackages(t *testing.T) map[string]*pkgInfo {
	t.Helper()
	out := map[string]*pkgInfo{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || path == filepath.Join(root, "test")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		p := out[dir]
		if p == nil {
			p = &pkgInfo{}
			out[dir] = p
		}
		addFile(t, p, f, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func addFile(t *testing.T, p *pkgInfo, f *ast.File, path string) {
	for _, s := range f.Imports {
		ip, err := strconv.Unquote(s.Path.Value)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if !slices.Contains(p.imports, ip) {
			p.imports = append(p.imports, ip)
		}
	}
	if f.Doc == nil {
		return
	}
	if _, after, ok := strings.Cut(f.Doc.Text(), "Imports:"); ok {
		if p.line != "" {
			t.Errorf("%s: a second Imports line in the package's documentation", path)
		}
		p.line = after
	}
}

// parseImportsLine returns the items of an Imports line: up to the end of its sentence (a
// period followed by a space or the end), split at commas, parenthesised remarks and
// "stdlib" left out.
func parseImportsLine(s string) []string {
	s = strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "...", "\x00")
	s = dropParens(s)
	if i := strings.Index(s+" ", ". "); i >= 0 {
		s = s[:i]
	}
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ReplaceAll(strings.TrimSpace(item), "\x00", "...")
		if item != "" && !strings.HasPrefix(item, "stdlib") {
			items = append(items, item)
		}
	}
	return items
}

func dropParens(s string) string {
	var b strings.Builder
	depth := 0
	for _, r := range s {
		switch {
		case r == '(':
			depth++
		case r == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// matches reports whether the listed item names import path p: its segments appear in p's
// in a row ("hub/link" names …/internal/hub/link); "x/..." names every package under x.
func matches(item, p string) bool {
	under := strings.HasSuffix(item, "/...")
	want := strings.Split(strings.TrimSuffix(item, "/..."), "/")
	segs := strings.Split(p, "/")
	for i := 0; i+len(want) <= len(segs); i++ {
		if slices.Equal(segs[i:i+len(want)], want) && (!under || i+len(want) < len(segs)) {
			return true
		}
	}
	return false
}

// isStd: standard library paths have no dot in their first element.
func isStd(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	return !strings.Contains(first, ".")
}
