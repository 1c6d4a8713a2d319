package schema

import (
	"bytes"

	"github.com/hashicorp/hcl/v2"
)

// JSONDiagnostic is a diagnostic as iotplan's JSON outputs carry it (validate -json, and the
// "diagnostic" events of plan/apply -json; docs/json.md). It has the shape of Terraform's
// (https://developer.hashicorp.com/terraform/cli/commands/validate#json and
// https://developer.hashicorp.com/terraform/internals/machine-readable-ui#diagnostic), so tools
// written for Terraform's diagnostics read it, with one difference that is the point of it:
// Snippet.Values is always empty, because iotplan never shows the values of expressions (one
// may be a secret that was not declared sensitive).
type JSONDiagnostic struct {
	Severity string `json:"severity"` // "error" or "warning"
	Summary  string `json:"summary"`
	Detail   string `json:"detail"`
	// Address names the resource a diagnostic of planning is about ("twin.door_location");
	// configuration diagnostics have a Range instead.
	Address string       `json:"address,omitempty"`
	Range   *JSONRange   `json:"range,omitempty"`
	Snippet *JSONSnippet `json:"snippet,omitempty"`
}

// JSONRange is a range of a configuration file: lines and columns count from 1 (columns in
// characters), bytes from 0, and End is just past the range.
type JSONRange struct {
	Filename string  `json:"filename"`
	Start    JSONPos `json:"start"`
	End      JSONPos `json:"end"`
}

// JSONPos is a position in a file.
type JSONPos struct {
	Line   int `json:"line"`
	Column int `json:"column"`
	Byte   int `json:"byte"`
}

// JSONSnippet is the source of a diagnostic's range: the lines WriteDiagnostics shows.
type JSONSnippet struct {
	// Context is the enclosing block (`twin "door_location"`), null when there is none.
	Context *string `json:"context"`
	// Code is the source lines, joined by "\n"; StartLine is the number of the first.
	Code      string `json:"code"`
	StartLine int    `json:"start_line"`
	// HighlightStartOffset and HighlightEndOffset are the byte offsets in Code of the range
	// itself (clamped to Code).
	HighlightStartOffset int `json:"highlight_start_offset"`
	HighlightEndOffset   int `json:"highlight_end_offset"`
	// Values is where Terraform lists the values of the expression's variables: always empty.
	Values []struct{} `json:"values"`
}

// DiagnosticsJSON converts diags to their JSON form, with a snippet of the source for each
// one that has a location in files. It reads only Severity, Summary, Detail, Subject and
// Context: never Expression or EvalContext, which could reveal variable values (Load strips
// them anyway).
func DiagnosticsJSON(files map[string]*hcl.File, diags hcl.Diagnostics) []JSONDiagnostic {
	out := make([]JSONDiagnostic, 0, len(diags))
	for _, d := range diags {
		if d == nil {
			continue
		}
		jd := JSONDiagnostic{Severity: "error", Summary: d.Summary, Detail: d.Detail}
		if d.Severity == hcl.DiagWarning {
			jd.Severity = "warning"
		}
		if d.Subject != nil {
			jd.Range = jsonRange(*d.Subject)
			if f := files[d.Subject.Filename]; f != nil && f.Bytes != nil {
				jd.Snippet = jsonSnippet(f, *d.Subject, d.Context)
			}
		}
		out = append(out, jd)
	}
	return out
}

func jsonRange(r hcl.Range) *JSONRange {
	return &JSONRange{
		Filename: r.Filename,
		Start:    JSONPos{Line: r.Start.Line, Column: r.Start.Column, Byte: r.Start.Byte},
		End:      JSONPos{Line: r.End.Line, Column: r.End.Column, Byte: r.End.Byte},
	}
}

// jsonSnippet takes the same lines as writeSnippet: the subject's, widened to a short
// context, at most 12. Taking no more matters: diagnostics about the hub block's connection
// string are placed so that those lines never show it.
func jsonSnippet(f *hcl.File, subj hcl.Range, ctx *hcl.Range) *JSONSnippet {
	show := subj
	if ctx != nil && ctx.Filename == subj.Filename && ctx.End.Line-ctx.Start.Line < 8 {
		show = hcl.RangeOver(subj, *ctx)
	}
	lines := bytes.Split(f.Bytes, []byte("\n"))
	first, last := show.Start.Line, show.End.Line
	if show.End.Column == 1 && last > first {
		last-- // a range ending at the start of a line does not include it
	}
	first = max(first, 1)
	last = min(last, len(lines), first+11)
	if first > last {
		return nil
	}
	// The file's own bytes, so that the highlight offsets are exact (also with CRLF lines).
	base := lineStart(lines, first)
	code := string(f.Bytes[base : lineStart(lines, last)+len(lines[last-1])])
	sn := &JSONSnippet{Code: code, StartLine: first, Values: []struct{}{}}
	clamp := func(b int) int { return min(max(b-base, 0), len(code)) }
	sn.HighlightStartOffset, sn.HighlightEndOffset = clamp(subj.Start.Byte), clamp(subj.End.Byte)
	if nav, ok := f.Nav.(interface{ ContextString(int) string }); ok {
		if c := nav.ContextString(subj.Start.Byte); c != "" {
			sn.Context = &c
		}
	}
	return sn
}
