package schema

import (
	"fmt"
	"sort"

	"github.com/agext/levenshtein"
)

// suggestion is the candidate closest to name, "" when none is close enough to be a likely
// typo. Like HCL's own attribute suggestions it accepts an edit distance below 3; ties go
// to the first candidate in sorted order, so the hint is stable.
func suggestion(name string, candidates []string) string {
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted)
	best, bestDist := "", 3
	for _, c := range sorted {
		if c == name {
			continue
		}
		if d := levenshtein.Distance(name, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Suggestion is the candidate closest to name, "" when none is close enough to be a likely
// typo (for addresses and names outside the configuration, such as the state's).
func Suggestion(name string, candidates []string) string { return suggestion(name, candidates) }

// didYouMean is " Did you mean \"x\"?" for a likely typo of name, else "".
func didYouMean(name string, candidates []string) string {
	if s := suggestion(name, candidates); s != "" {
		return fmt.Sprintf(" Did you mean %q?", s)
	}
	return ""
}
