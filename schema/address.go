package schema

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Addresses name resource instances the way Terraform's do
// (https://developer.hashicorp.com/terraform/cli/state/resource-addressing):
//
//	twin.doors                       a twin block without for_each/count
//	twin.building["41"]              one instance of a for_each block
//	method.reboot[0]                 one instance of a count block
//	module.site.twin.doors           a resource in a module
//	module.sites["east"].twin.doors  ... in one instance of a module
//
// They appear in plans, the state, job ids (reduced to the characters job ids allow) and
// -target.

// ParseTarget checks a -target address: a resource ("twin.doors"), one of its instances
// (`twin.building["41"]`), a module ("module.site") or a module instance, each optionally
// inside modules. The error says what is wrong; it quotes nothing but the address.
func ParseTarget(addr string) error {
	tr, diags := hclsyntax.ParseTraversalAbs([]byte(addr), "-target", hcl.InitialPos)
	if diags.HasErrors() {
		return fmt.Errorf("-target %q is not an address such as twin.doors, twin.building[\"41\"] or module.site", addr)
	}
	for i := 0; i < len(tr); {
		kind := ""
		if i == 0 {
			kind = tr.RootName()
		} else if a, ok := tr[i].(hcl.TraverseAttr); ok {
			kind = a.Name
		}
		if kind != "module" && kind != "twin" && kind != "method" {
			return fmt.Errorf("-target %q: expected module, twin or method where it says %q", addr, kind)
		}
		if i+1 >= len(tr) {
			return fmt.Errorf("-target %q: %s needs a name, as in %s.NAME", addr, kind, kind)
		}
		if _, ok := tr[i+1].(hcl.TraverseAttr); !ok {
			return fmt.Errorf("-target %q: %s needs a name, as in %s.NAME", addr, kind, kind)
		}
		i += 2
		if i < len(tr) {
			if _, ok := tr[i].(hcl.TraverseIndex); ok {
				i++
			}
		}
		if kind != "module" && i < len(tr) {
			return fmt.Errorf("-target %q: nothing can follow a %s's address", addr, kind)
		}
	}
	return nil
}

// Selects reports whether the -target address target selects the instance addr: the same
// address, an instance of it (twin.b selects twin.b["41"]), or anything inside a module it
// names (module.site selects module.site.twin.doors).
func Selects(target, addr string) bool {
	return addr == target || strings.HasPrefix(addr, target+".") || strings.HasPrefix(addr, target+"[")
}

// SelectsAny is Selects for a list of targets; no targets select everything.
func SelectsAny(targets []string, addr string) bool {
	if len(targets) == 0 {
		return true
	}
	for _, t := range targets {
		if Selects(t, addr) {
			return true
		}
	}
	return false
}

// KindOf is the kind of resource an instance address names ("twin" or "method"), after any
// module path; "" when addr is not a resource address.
func KindOf(addr string) string {
	tr, diags := hclsyntax.ParseTraversalAbs([]byte(addr), "address", hcl.InitialPos)
	if diags.HasErrors() {
		return ""
	}
	kind := ""
	for i := 0; i < len(tr); i++ {
		name := ""
		if i == 0 {
			name = tr.RootName()
		} else if a, ok := tr[i].(hcl.TraverseAttr); ok {
			name = a.Name
		} else {
			continue
		}
		switch {
		case name == "module" && i+1 < len(tr):
			i++ // the module's name
		case name == "twin" || name == "method":
			return name
		default:
			return kind
		}
	}
	return kind
}

// Selectors lists the addresses that select addr, shortest first: its modules, its resource
// without the instance key, and addr itself (`module.a.twin.b["k"]` → module.a,
// module.a.twin.b, `module.a.twin.b["k"]`). Suggestions for mistyped addresses choose
// among them.
func Selectors(addr string) []string {
	tr, diags := hclsyntax.ParseTraversalAbs([]byte(addr), "address", hcl.InitialPos)
	if diags.HasErrors() {
		return []string{addr}
	}
	var out []string
	add := func(step hcl.Traverser) {
		if end := step.SourceRange().End.Byte; end > 0 && end <= len(addr) {
			out = append(out, addr[:end])
		}
	}
	// kind, name, [index]; kind, name, [index]; ...
	for i := 1; i < len(tr); i += 2 {
		add(tr[i])
		if i+1 < len(tr) {
			if _, isIndex := tr[i+1].(hcl.TraverseIndex); isIndex {
				i++
				add(tr[i])
			}
		}
	}
	if len(out) == 0 || out[len(out)-1] != addr {
		out = append(out, addr)
	}
	return out
}
