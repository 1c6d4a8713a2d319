// Package render writes iotplan's human output: plans (Terraform style), apply progress and
// apply results; and their machine-readable form, JSON Lines events and the JSON of a saved
// plan (json.go, json_plan.go; docs/json.md). It only formats: every function writes to an
// io.Writer it is given and reads the inert data of internal/reconcile, so what is shown is
// exactly what apply will do. Imports: internal/reconcile, internal/hubapi, schema (its
// JSON diagnostics), github.com/vbauerster/mpb/v8 (progress bars on a terminal, bars.go),
// github.com/mattn/go-runewidth (their widths), stdlib.
package render

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Options control presentation.
type Options struct {
	// Color enables ANSI colors (off for -no-color and when the output is not a terminal).
	Color bool
}

// ANSI styles.
const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	dim    = "\x1b[2m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
)

type styler struct{ on bool }

func (s styler) style(code, text string) string {
	if !s.on || text == "" {
		return text
	}
	return code + text + reset
}

// Count formats n with thousands separators: 9812 → "9,812".
func Count(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Plural returns "1 device" / "2 devices" with a formatted count.
func Plural(n int, one, many string) string { return plural(n, one, many) }

func plural(n int, one, many string) string {
	if n == 1 {
		return Count(n) + " " + one
	}
	return Count(n) + " " + many
}

// maxValue bounds how much of a value a plan line shows.
const maxValue = 60

// value renders a JSON value compactly, shortened with … when long.
func value(raw json.RawMessage) string {
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "null"
	}
	if utf8.RuneCountInString(s) > maxValue {
		r := []rune(s)
		s = string(r[:maxValue-1]) + "…"
	}
	return s
}

// examples renders sample ids: "(door-00017, door-00345, …)"; … when more devices exist than
// are shown.
func examples(ids []string, devices int) string {
	if len(ids) == 0 {
		return ""
	}
	s := strings.Join(ids, ", ")
	if devices > len(ids) {
		s += ", …"
	}
	return "(" + s + ")"
}

// writer accumulates the first write error so rendering code stays linear.
type writer struct {
	w   io.Writer
	err error
}

func (w *writer) printf(format string, args ...any) {
	if w.err == nil {
		_, w.err = fmt.Fprintf(w.w, format, args...)
	}
}
