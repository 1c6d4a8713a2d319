package schema

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"

	"github.com/iotplan/iotplan/internal/safetext"
)

// WriteDiagnostics renders diags Terraform-style to w: severity and summary,
// the location as file:line:col with the enclosing block, the source lines
// with the subject marked by carets, and the detail wrapped to width
// (0 = no wrapping). color adds VT100 colors. It never prints the values of
// variables (unlike hcl.NewDiagnosticTextWriter), so secrets stay out of it.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, width int, color bool) error {
	bw := bufio.NewWriter(w)
	for _, d := range diags {
		if d == nil {
			continue
		}
		writeDiagnostic(bw, files, d, width, color)
	}
	return bw.Flush()
}

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiRed    = "\x1b[1;31m"
	ansiYellow = "\x1b[1;33m"
)

func writeDiagnostic(w *bufio.Writer, files map[string]*hcl.File, d *hcl.Diagnostic, width int, color bool) {
	sev, paint := "Error", ansiRed
	if d.Severity == hcl.DiagWarning {
		sev, paint = "Warning", ansiYellow
	}
	style := func(code, s string) string {
		if !color {
			return s
		}
		return code + s + ansiReset
	}
	// Summaries, details, file names and block labels may quote the source, which may hold
	// any bytes: they are escaped (safetext) so a file cannot drive the terminal.
	fmt.Fprintf(w, "%s: %s\n\n", style(paint, sev), style(ansiBold, safetext.EscapeExcept(d.Summary, "\t")))

	if d.Subject != nil {
		subj := *d.Subject
		loc := fmt.Sprintf("%s:%d:%d", safetext.Escape(subj.Filename), subj.Start.Line, subj.Start.Column)
		f := files[subj.Filename]
		if f == nil || f.Bytes == nil {
			fmt.Fprintf(w, "  on %s:\n  (source code not available)\n\n", loc)
		} else {
			if nav, ok := f.Nav.(interface{ ContextString(int) string }); ok {
				if c := nav.ContextString(subj.Start.Byte); c != "" {
					loc += ", in " + safetext.Escape(c)
				}
			}
			fmt.Fprintf(w, "  on %s:\n", loc)
			writeSnippet(w, f.Bytes, subj, d.Context, func(s string) string { return style(paint, s) })
			w.WriteByte('\n')
		}
	}
	if d.Detail != "" {
		w.WriteString(wrap(safetext.EscapeExcept(d.Detail, "\t\n"), width))
		w.WriteString("\n\n")
	}
}

// writeSnippet prints the source lines of the subject (widened to the
// context when that is short), with carets under the subject on its first
// line. Lines are printed escaped (control bytes other than tab, invalid
// UTF-8), and the carets are placed on the escaped text.
func writeSnippet(w *bufio.Writer, src []byte, subj hcl.Range, ctx *hcl.Range, paint func(string) string) {
	show := subj
	if ctx != nil && ctx.Filename == subj.Filename && ctx.End.Line-ctx.Start.Line < 8 {
		show = hcl.RangeOver(subj, *ctx)
	}
	lines := bytes.Split(src, []byte("\n"))
	first, last := show.Start.Line, show.End.Line
	if show.End.Column == 1 && last > first {
		last-- // a range ending at the start of a line does not include it
	}
	if first < 1 {
		first = 1
	}
	if last > len(lines) {
		last = len(lines)
	}
	if last-first >= 12 {
		last = first + 11
	}
	for n := first; n <= last; n++ {
		line := strings.TrimRight(string(lines[n-1]), "\r")
		fmt.Fprintf(w, "%5d: %s\n", n, printable(line))
		if n != subj.Start.Line {
			continue
		}
		startByte := subj.Start.Byte - lineStart(lines, n)
		if startByte < 0 || startByte > len(line) {
			continue
		}
		endByte := len(line)
		if subj.End.Line == n {
			endByte = subj.End.Byte - lineStart(lines, n)
		}
		endByte = min(max(endByte, startByte), len(line))
		fmt.Fprintf(w, "%s%s\n", caretPad(printable(line[:startByte])), paint(carets(printable(line[startByte:endByte]))))
	}
}

// printable is a source line as the snippet shows it: tabs kept (they align the carets),
// other control bytes and invalid UTF-8 escaped.
func printable(line string) string { return safetext.EscapeExcept(line, "\t") }

// caretPad is the indentation of the carets: the gutter, then a space per rune of what
// precedes the subject on its line, tabs copied so they align too.
func caretPad(before string) string {
	var pad strings.Builder
	pad.WriteString("       ")
	for _, r := range before {
		if r == '\t' {
			pad.WriteByte('\t')
		} else {
			pad.WriteByte(' ')
		}
	}
	return pad.String()
}

// carets underlines subject, one caret per rune (at least one).
func carets(subject string) string {
	return strings.Repeat("^", max(1, utf8.RuneCountInString(subject)))
}

// lineStart is the byte offset of line n (1-based).
func lineStart(lines [][]byte, n int) int {
	off := 0
	for i := 0; i < n-1 && i < len(lines); i++ {
		off += len(lines[i]) + 1
	}
	return off
}

// wrap word-wraps each paragraph of s to width; lines that start with a
// space are preformatted and kept as they are.
func wrap(s string, width int) string {
	if width <= 0 {
		return s
	}
	var out []string
	for _, para := range strings.Split(s, "\n") {
		if strings.HasPrefix(para, " ") || utf8.RuneCountInString(para) <= width {
			out = append(out, para)
			continue
		}
		var line strings.Builder
		n := 0
		for _, word := range strings.Fields(para) {
			wl := utf8.RuneCountInString(word)
			if n > 0 && n+1+wl > width {
				out = append(out, line.String())
				line.Reset()
				n = 0
			}
			if n > 0 {
				line.WriteByte(' ')
				n++
			}
			line.WriteString(word)
			n += wl
		}
		out = append(out, line.String())
	}
	return strings.Join(out, "\n")
}
