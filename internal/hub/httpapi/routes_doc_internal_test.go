package httpapi

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// docRoute is one row of the route table in docs/hub-api.md.
type docRoute struct {
	rights []string
	class  string
}

// docRoutes reads the rows between <!-- routes:begin --> and <!-- routes:end --> of
// docs/hub-api.md: | `METHOD /path` | Right or Right | Class | notes |.
func docRoutes(t *testing.T) map[string]docRoute {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "hub-api.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- routes:begin -->")
	table, _, ok2 := strings.Cut(rest, "<!-- routes:end -->")
	if !ok || !ok2 {
		t.Fatal("docs/hub-api.md has no <!-- routes:begin --> … <!-- routes:end --> table")
	}
	out := map[string]docRoute{}
	for line := range strings.SplitSeq(strings.TrimSpace(table), "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) < 3 || cells[0] == "Route" || strings.HasPrefix(cells[0], "---") {
			continue
		}
		pattern := strings.Trim(cells[0], "`")
		if _, dup := out[pattern]; dup {
			t.Errorf("docs/hub-api.md lists %s twice", pattern)
		}
		out[pattern] = docRoute{rights: strings.Split(cells[1], " or "), class: cells[2]}
	}
	return out
}

// The route table the server is built from and the one docs/hub-api.md shows agree: the same
// routes, each with the same rights and throttle class.
func TestRouteTableIsDocumented(t *testing.T) {
	doc := docRoutes(t)
	if len(doc) == 0 {
		t.Fatal("the documented route table has no rows")
	}
	for _, rt := range routeTable {
		d, ok := doc[rt.pattern]
		if !ok {
			t.Errorf("%s is served but not documented in docs/hub-api.md", rt.pattern)
			continue
		}
		delete(doc, rt.pattern)
		var rights []string
		for _, r := range rt.rights {
			rights = append(rights, r.String())
		}
		if !slices.Equal(rights, d.rights) {
			t.Errorf("%s: the server needs %v, docs/hub-api.md says %v", rt.pattern, rights, d.rights)
		}
		if string(rt.class) != d.class {
			t.Errorf("%s: the server throttles it as %q, docs/hub-api.md says %q", rt.pattern, rt.class, d.class)
		}
	}
	for p := range doc {
		t.Errorf("docs/hub-api.md documents %s, which the server does not serve", p)
	}
}

// Each route has rights, a throttle class and a handler, and no pattern appears twice.
func TestRouteTableComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range routeTable {
		for _, p := range append([]string{rt.pattern}, rt.aliases...) {
			if seen[p] {
				t.Errorf("%s appears twice", p)
			}
			seen[p] = true
		}
		if len(rt.rights) == 0 || rt.class == "" || rt.handle == nil {
			t.Errorf("%s: rights %v, class %q, handler set %v", rt.pattern, rt.rights, rt.class, rt.handle != nil)
		}
	}
}
