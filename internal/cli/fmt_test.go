package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fmtInput is the unformatted tree the fmt tests copy and format; its golden files are
// beside it (go test ./internal/cli -run TestFmt -update rewrites them: review the diff).
const fmtInput = "testdata/fmt/input"

// copyTree copies the fmt input into a new directory and returns it.
func copyTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(fmtInput)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// snapshot reads every file under dir, with its modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		info, _ := d.Info()
		out[p] = string(b) + "\x00" + info.ModTime().String()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertUnchanged(t *testing.T, before map[string]string, dir string) {
	t.Helper()
	after := snapshot(t, dir)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s was written", p)
		}
	}
	if len(after) != len(before) {
		t.Errorf("files under %s: %d before, %d after", dir, len(before), len(after))
	}
}

// golden compares got with testdata/fmt/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "fmt", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./internal/cli -run TestFmt -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the output:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// iotplanStdin runs the CLI in-process with input on standard input.
func iotplanStdin(t *testing.T, input string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := run(ctx, args, Streams{In: strings.NewReader(input), Out: &out, Err: &errb, Width: 100})
	return result{code, out.String(), errb.String()}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFmtWritesAndListsChangedFiles(t *testing.T) {
	dir := copyTree(t)
	json, nested, formatted := readFile(t, dir+"/ignored.hcl.json"), readFile(t, dir+"/sub/nested.hcl"), readFile(t, dir+"/formatted.hcl")

	r := iotplan(t, "fmt", dir)
	if r.code != 0 {
		t.Fatalf("fmt exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out, r.err)
	}
	if want := dir + "/main.hcl\n" + dir + "/site.vars\n"; r.out != want {
		t.Errorf("fmt listed:\n%s\nwant:\n%s", r.out, want)
	}
	golden(t, "main.hcl.golden", readFile(t, dir+"/main.hcl"))
	golden(t, "site.vars.golden", readFile(t, dir+"/site.vars"))
	for path, before := range map[string]string{"ignored.hcl.json": json, "sub/nested.hcl": nested, "formatted.hcl": formatted} {
		if got := readFile(t, filepath.Join(dir, path)); got != before {
			t.Errorf("fmt changed %s (JSON, a subdirectory without -recursive, or already formatted):\n%s", path, got)
		}
	}
	if info, err := os.Stat(dir + "/main.hcl"); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("main.hcl after fmt: %v, %v; want mode 0644 kept", info, err)
	}

	// Formatting is stable: a second run changes nothing; -recursive reaches sub/.
	if r := iotplan(t, "fmt", "-recursive", dir); r.code != 0 || r.out != dir+"/sub/nested.hcl\n" {
		t.Errorf("fmt -recursive: exit %d, listed %q; want only sub/nested.hcl", r.code, r.out)
	}
	if got := readFile(t, dir+"/sub/nested.hcl"); got != "twin \"nested\" {\n  target = \"*\"\n}\n" {
		t.Errorf("sub/nested.hcl after fmt -recursive:\n%s", got)
	}
	if r := iotplan(t, "fmt", "-check", "-recursive", dir); r.code != 0 || r.out != "" {
		t.Errorf("fmt -check after fmt: exit %d, output %q; want 0 and nothing", r.code, r.out)
	}
}

func TestFmtDiff(t *testing.T) {
	dir := copyTree(t)
	before := snapshot(t, dir)
	r := iotplan(t, "fmt", "-diff", "-write=false", "-list=false", dir)
	if r.code != 0 {
		t.Fatalf("fmt -diff exit %d\nstderr:\n%s", r.code, r.err)
	}
	assertUnchanged(t, before, dir)
	golden(t, "fmt.diff.golden", strings.ReplaceAll(r.out, filepath.ToSlash(dir), "DIR"))

	// The diff is a real one: applied to the input it gives the formatted file.
	main := readFile(t, fmtInput+"/main.hcl")
	if got := applyDiff(t, main, unifiedDiff("main.hcl", []byte(main), []byte(readFile(t, "testdata/fmt/main.hcl.golden")))); got != readFile(t, "testdata/fmt/main.hcl.golden") {
		t.Errorf("the diff applied to main.hcl gives:\n%s", got)
	}
}

func TestFmtCheck(t *testing.T) {
	dir := copyTree(t)
	before := snapshot(t, dir)
	r := iotplan(t, "fmt", "-check", dir)
	if r.code != exitNotFormatted {
		t.Errorf("fmt -check on unformatted files: exit %d, want %d", r.code, exitNotFormatted)
	}
	if want := dir + "/main.hcl\n" + dir + "/site.vars\n"; r.out != want {
		t.Errorf("fmt -check listed:\n%s\nwant:\n%s", r.out, want)
	}
	if r := iotplan(t, "fmt", "-check", "-list=false", dir); r.code != exitNotFormatted || r.out != "" {
		t.Errorf("fmt -check -list=false: exit %d, output %q; want %d and nothing", r.code, r.out, exitNotFormatted)
	}
	if r := iotplan(t, "fmt", "-check", "-write=true", dir+"/main.hcl"); r.code != exitNotFormatted {
		t.Errorf("fmt -check -write=true: exit %d, want %d (-check never writes)", r.code, exitNotFormatted)
	}
	assertUnchanged(t, before, dir)
	if r := iotplan(t, "fmt", "-check", dir+"/formatted.hcl"); r.code != 0 || r.out != "" || r.err != "" {
		t.Errorf("fmt -check on a formatted file: exit %d, stdout %q, stderr %q; want 0 and nothing", r.code, r.out, r.err)
	}
}

func TestFmtStdin(t *testing.T) {
	input := readFile(t, fmtInput+"/main.hcl")
	r := iotplanStdin(t, input, "fmt", "-")
	if r.code != 0 {
		t.Fatalf("fmt - exit %d\nstderr:\n%s", r.code, r.err)
	}
	golden(t, "main.hcl.golden", r.out)
	if r := iotplanStdin(t, input, "fmt", "-check", "-"); r.code != exitNotFormatted || r.out != "" {
		t.Errorf("fmt -check - on unformatted input: exit %d, output %q", r.code, r.out)
	}
	if r := iotplanStdin(t, r.out, "fmt", "-check", "-"); r.code != 0 {
		t.Errorf("fmt -check - on formatted input: exit %d", r.code)
	}
	if r := iotplanStdin(t, input, "fmt", "-diff", "-"); r.code != 0 || !strings.HasPrefix(r.out, "--- old/<stdin>\n+++ new/<stdin>\n@@ ") {
		t.Errorf("fmt -diff -: exit %d, output:\n%s", r.code, r.out)
	}
	if r := iotplanStdin(t, input, "fmt", "-", "main.hcl"); r.code != exitError {
		t.Errorf("fmt - with a file: exit %d, want %d", r.code, exitError)
	}
}

func TestFmtSyntaxErrorWritesNothing(t *testing.T) {
	dir := copyTree(t)
	if err := os.WriteFile(dir+"/broken.hcl", []byte("twin \"x\" {\n  target = \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)
	r := iotplan(t, "fmt", dir)
	if r.code != exitError {
		t.Errorf("fmt with a syntax error: exit %d, want %d", r.code, exitError)
	}
	// Located like every configuration error: file:line:col, the line, a caret under it.
	for _, want := range []string{"Error: ", "on " + dir + "/broken.hcl:2:12", "    2:   target = \n", "                  ^\n"} {
		if !strings.Contains(r.err, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.err)
		}
	}
	if r.out != "" {
		t.Errorf("stdout = %q, want nothing listed (nothing is written)", r.out)
	}
	// Not even the files that parse (main.hcl, site.vars) are written.
	assertUnchanged(t, before, dir)

	if r := iotplanStdin(t, "twin {\n", "fmt", "-"); r.code != exitError || r.out != "" || !strings.Contains(r.err, "on <stdin>:1:") {
		t.Errorf("fmt - with a syntax error: exit %d, stdout %q, stderr:\n%s", r.code, r.out, r.err)
	}
}

func TestFmtRefusesOtherFiles(t *testing.T) {
	dir := copyTree(t)
	before := snapshot(t, dir)
	for _, tc := range []struct{ arg, want string }{
		{dir + "/ignored.hcl.json", "JSON files are not formatted"},
		{dir + "/notes.txt", "not a configuration or variable file"},
		{dir + "/missing.hcl", "no such file or directory"},
	} {
		// The refused file comes after one that would be formatted: nothing is written.
		r := iotplan(t, "fmt", dir+"/main.hcl", tc.arg)
		if r.code != exitError || !strings.Contains(r.err, tc.want) || r.out != "" {
			t.Errorf("fmt %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", tc.arg, r.code, r.out, r.err, tc.want)
		}
	}
	assertUnchanged(t, before, dir)
}

// applyDiff applies a unified diff made by unifiedDiff to a.
func applyDiff(t *testing.T, a, diff string) string {
	t.Helper()
	src := splitLines(a)
	var out []string
	next := 0 // the next line of src not yet copied
	prev := byte(0)
	lines := splitLines(diff)
	for _, l := range lines[2:] {
		switch {
		case strings.HasPrefix(l, "@@ "):
			start, count := 0, 1
			if _, err := fmt.Sscanf(l, "@@ -%d,%d", &start, &count); err != nil {
				if _, err := fmt.Sscanf(l, "@@ -%d", &start); err != nil {
					t.Fatalf("hunk header %q: %v", l, err)
				}
			}
			if count > 0 {
				start-- // the hunk starts at line start; an empty one after it
			}
			for ; next < start; next++ {
				out = append(out, src[next])
			}
		case strings.HasPrefix(l, `\ `):
			if prev == '+' {
				out[len(out)-1] = strings.TrimSuffix(out[len(out)-1], "\n")
			}
		case l[0] == ' ' || l[0] == '-':
			if src[next] != l[1:] && src[next]+"\n" != l[1:] {
				t.Fatalf("context %q does not match line %d %q", l, next+1, src[next])
			}
			if l[0] == ' ' {
				out = append(out, src[next])
			}
			next++
		case l[0] == '+':
			out = append(out, l[1:])
		}
		prev = l[0]
	}
	return strings.Join(append(out, src[next:]...), "")
}

func TestUnifiedDiff(t *testing.T) {
	lines := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := 1; i <= n; i++ {
			b.WriteString(f(i) + "\n")
		}
		return b.String()
	}
	plain := lines(20, func(i int) string { return fmt.Sprint("line ", i) })
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{"equal", "a\n", "a\n", ""},
		{"one change in the middle", plain, strings.Replace(plain, "line 10\n", "LINE 10\n", 1),
			"--- old/f\n+++ new/f\n@@ -7,7 +7,7 @@\n line 7\n line 8\n line 9\n-line 10\n+LINE 10\n line 11\n line 12\n line 13\n"},
		{"two hunks", plain, strings.Replace(strings.Replace(plain, "line 2\n", "", 1), "line 19\n", "line 19\nnew\n", 1),
			"--- old/f\n+++ new/f\n@@ -1,5 +1,4 @@\n line 1\n-line 2\n line 3\n line 4\n line 5\n" +
				"@@ -17,4 +16,5 @@\n line 17\n line 18\n line 19\n+new\n line 20\n"},
		{"changes 6 lines apart share a hunk", plain, strings.Replace(strings.Replace(plain, "line 3\n", "x\n", 1), "line 10\n", "y\n", 1),
			"--- old/f\n+++ new/f\n@@ -1,13 +1,13 @@\n line 1\n line 2\n-line 3\n+x\n line 4\n line 5\n line 6\n line 7\n line 8\n line 9\n-line 10\n+y\n line 11\n line 12\n line 13\n"},
		{"no newline at end", "a\nb", "a\nb\n",
			"--- old/f\n+++ new/f\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n"},
		{"from empty", "", "a\n", "--- old/f\n+++ new/f\n@@ -0,0 +1 @@\n+a\n"},
		{"to empty", "a\n", "", "--- old/f\n+++ new/f\n@@ -1 +0,0 @@\n-a\n"},
	} {
		got := unifiedDiff("f", []byte(tc.a), []byte(tc.b))
		if got != tc.want {
			t.Errorf("%s: diff\n%s\nwant\n%s", tc.name, got, tc.want)
		}
		if got != "" {
			if applied := applyDiff(t, tc.a, got); applied != tc.b {
				t.Errorf("%s: the diff applied gives %q, want %q", tc.name, applied, tc.b)
			}
		}
	}
}
