package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// ErrConflict: two resources manage the same key with different values on devices both
// target; every apply would flip the value, so the plan is refused.
var ErrConflict = errors.New("resources conflict")

// Conflict is two twin resources that set one key to different values, and how many devices
// both target (counted: one COUNT of the two targets ANDed, per pair that shares a key).
type Conflict struct {
	A       string `json:"a"`
	B       string `json:"b"`
	Key     string `json:"key"`
	Devices int    `json:"devices"`
}

// readConflicts counts, for every pair of twin resources that manage a key with different
// values, the devices both target.
func readConflicts(ctx context.Context, q Querier, cfg *Config) ([]Conflict, error) {
	type owner struct {
		addr   string
		target query.Expr
		value  string
	}
	byKey := map[string][]owner{}
	for _, t := range cfg.Twins {
		pt, err := prepareTwin(t)
		if err != nil {
			return nil, err
		}
		for _, l := range pt.leaves {
			byKey[l.Name()] = append(byKey[l.Name()], owner{t.Addr, scope(t.Target), valueKey(l.Value)})
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Conflict
	seen := map[string]bool{}
	for _, k := range keys {
		os := byKey[k]
		for i := range os {
			for j := i + 1; j < len(os); j++ {
				a, b := os[i], os[j]
				pair := a.addr + "\x00" + b.addr
				if a.value == b.value || seen[pair] {
					continue
				}
				seen[pair] = true
				n, err := count(ctx, q, a.addr, query.And(a.target, b.target))
				if err != nil {
					return nil, err
				}
				if n > 0 {
					out = append(out, Conflict{A: a.addr, B: b.addr, Key: k, Devices: n})
				}
			}
		}
	}
	return out, nil
}

// conflictError describes the conflicts of a plan.
func conflictError(cs []Conflict) error {
	var lines []string
	for _, c := range cs {
		lines = append(lines, fmt.Sprintf("%s and %s both manage %s, with different values, on %s devices both target",
			c.A, c.B, c.Key, countText(c.Devices)))
	}
	return fmt.Errorf("%w: %s; every apply would flip the value: give one key one owner, or make the targets disjoint", ErrConflict, strings.Join(lines, "; "))
}

// ConfigurationLister reads the hub's automatic device management configurations
// (*hubclient.Client is one). A Querier that is one lets plans report the keys an ADM
// configuration also manages.
type ConfigurationLister interface {
	ListConfigurations(ctx context.Context) ([]hubapi.Configuration, error)
}

// admNotes names the ADM configurations whose device content overlaps a managed key: the hub
// applies them too, by priority, so the two would fight over the key.
func admNotes(cfg *Config, configs []hubapi.Configuration) []string {
	var notes []string
	for _, c := range configs {
		if c.Content == nil {
			continue
		}
		for path := range c.Content.DeviceContent {
			for _, t := range cfg.Twins {
				pt, err := prepareTwin(t)
				if err != nil {
					continue
				}
				for _, l := range pt.leaves {
					if overlaps(path, l.Path().String()) {
						notes = append(notes, fmt.Sprintf("%s: ADM configuration %q (priority %d, target %q) also sets %s, which overlaps %s",
							t.Addr, c.ID, c.Priority, c.TargetCondition, path, l.Name()))
					}
				}
			}
		}
	}
	sort.Strings(notes)
	return notes
}

// overlaps reports whether two twin paths are the same or one contains the other.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+".") || strings.HasPrefix(b, a+".")
}
