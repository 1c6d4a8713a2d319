package cli

import (
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines around each change, diff -u's default.
const diffContext = 3

// maxDiffCells bounds the table of the line diff (lines of a × lines of b after the common
// start and end are set aside): beyond it the changed middle is shown as removed and added
// whole, still a correct diff, so a huge file cannot make 'fmt -diff' use gigabytes.
const maxDiffCells = 4_000_000

// lineEdit is one line of a diff: ' ' kept, '-' removed, '+' added. text ends in "\n" except
// for a last line that had none.
type lineEdit struct {
	op   byte
	text string
}

// unifiedDiff is the unified diff (diff -u's format) from a to b, with the file labelled
// old/NAME and new/NAME as 'terraform fmt -diff' labels it, so 'patch -p1' applies it; ""
// when a and b are equal.
func unifiedDiff(name string, a, b []byte) string {
	if string(a) == string(b) {
		return ""
	}
	edits := diffLines(splitLines(string(a)), splitLines(string(b)))
	var w strings.Builder
	fmt.Fprintf(&w, "--- old/%s\n+++ new/%s\n", name, name)
	for _, h := range hunks(edits) {
		writeHunk(&w, edits, h)
	}
	return w.String()
}

// splitLines splits s after each "\n"; a last line without one is kept as it is.
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// diffLines is a shortest edit from a to b: the common start and end kept, and the middle
// from a longest common subsequence of lines (or replaced whole past maxDiffCells).
func diffLines(a, b []string) []lineEdit {
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	var out []lineEdit
	for _, l := range a[:pre] {
		out = append(out, lineEdit{' ', l})
	}
	out = append(out, lcsEdits(a[pre:len(a)-suf], b[pre:len(b)-suf])...)
	for _, l := range a[len(a)-suf:] {
		out = append(out, lineEdit{' ', l})
	}
	return out
}

// lcsEdits diffs a and b by dynamic programming over their longest common subsequence.
func lcsEdits(a, b []string) []lineEdit {
	var out []lineEdit
	n, m := len(a), len(b)
	if n*m > maxDiffCells {
		for _, l := range a {
			out = append(out, lineEdit{'-', l})
		}
		for _, l := range b {
			out = append(out, lineEdit{'+', l})
		}
		return out
	}
	// lcs[i*(m+1)+j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([]int32, (n+1)*(m+1))
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i*(m+1)+j] = lcs[(i+1)*(m+1)+j+1] + 1
			} else {
				lcs[i*(m+1)+j] = max(lcs[(i+1)*(m+1)+j], lcs[i*(m+1)+j+1])
			}
		}
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			out = append(out, lineEdit{' ', a[i]})
			i, j = i+1, j+1
		case j == m || (i < n && lcs[(i+1)*(m+1)+j] >= lcs[i*(m+1)+j+1]):
			out = append(out, lineEdit{'-', a[i]})
			i++
		default:
			out = append(out, lineEdit{'+', b[j]})
			j++
		}
	}
	return out
}

// hunk is a range [start, end) of edits shown together.
type hunk struct{ start, end int }

// hunks groups the changes with diffContext kept lines around each; changes separated by at
// most twice that many kept lines share a hunk, as in diff -u.
func hunks(edits []lineEdit) []hunk {
	var out []hunk
	i := 0
	for {
		for i < len(edits) && edits[i].op == ' ' {
			i++
		}
		if i == len(edits) {
			return out
		}
		h := hunk{start: max(0, i-diffContext)}
		end := i
		for {
			for end < len(edits) && edits[end].op != ' ' {
				end++
			}
			next := end
			for next < len(edits) && edits[next].op == ' ' {
				next++
			}
			if next < len(edits) && next-end <= 2*diffContext {
				end = next
				continue
			}
			h.end = min(len(edits), end+diffContext)
			break
		}
		out = append(out, h)
		i = h.end
	}
}

// writeHunk writes one hunk with its "@@ -l,s +l,s @@" header.
func writeHunk(w *strings.Builder, edits []lineEdit, h hunk) {
	aLine, bLine := 1, 1 // line numbers of edits[h.start] in a and in b
	for _, e := range edits[:h.start] {
		if e.op != '+' {
			aLine++
		}
		if e.op != '-' {
			bLine++
		}
	}
	aCount, bCount := 0, 0
	for _, e := range edits[h.start:h.end] {
		if e.op != '+' {
			aCount++
		}
		if e.op != '-' {
			bCount++
		}
	}
	fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aLine, aCount), hunkRange(bLine, bCount))
	for _, e := range edits[h.start:h.end] {
		w.WriteByte(e.op)
		w.WriteString(e.text)
		if !strings.HasSuffix(e.text, "\n") {
			w.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange is "start,count" as diff -u writes it: the count left out when it is 1, and an
// empty range numbered by the line before it.
func hunkRange(start, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", start-1)
	case 1:
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, count)
}
