package schema

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A configuration file may hold any bytes. Its diagnostics quote it (snippets, summaries and
// details that name what was found, block labels), but never pass a control byte or invalid
// UTF-8 through to the terminal: ESC could recolour or retitle it, CR and NUL could hide
// text. Tabs stay (they align the carets).
func TestWriteDiagnosticsEscapesControlBytes(t *testing.T) {
	sources := map[string]string{
		// An ESC sequence and a NUL inside a string in an unsupported argument.
		"attr.hcl": "twin \"a\" {\n\ttarget = \"deviceId = 'x'\"\n\tcolour = \"\x1b]0;pwned\x07\x1b[2J\x00\"\n}\n",
		// Raw bytes outside any token: a syntax error whose snippet is the bad line.
		"syntax.hcl": "twin \"a\x1b[31m\" {\n  \x1b[31m\x00\xff = 1\r\n}\n",
		// An ESC in a block label that a summary or detail quotes.
		"label.hcl": "twin \"\x1b[1mdup\" {\n  target = \"deviceId = 'x'\"\n}\ntwin \"\x1b[1mdup\" {\n  target = \"deviceId = 'y'\"\n}\n",
		// A bidi override that would reorder the line on screen.
		"bidi.hcl": "twin \"a\" {\n  target = \"deviceId = 'x'\" \u202e nope\n}\n",
	}
	for name, src := range sources {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, diags := Load([]string{path}, nil)
			if !diags.HasErrors() {
				t.Fatalf("no error diagnostics for %q", src)
			}
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, cfg.Files, diags, 80, false); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if !strings.Contains(out, name+":") {
				t.Errorf("no location in:\n%s", out)
			}
			for i := 0; i < len(out); i++ {
				if c := out[i]; (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f {
					t.Fatalf("raw control byte %#x at %d in:\n%q", c, i, out)
				}
			}
			if !strings.Contains(out, `\x1b`) && !strings.Contains(out, `\u202e`) {
				t.Errorf("the offending bytes are not shown escaped:\n%s", out)
			}
			if strings.ContainsRune(out, '\u202e') || !isValidUTF8(out) {
				t.Errorf("bidi override or invalid UTF-8 passed through:\n%q", out)
			}
			// JSON diagnostics keep the source as it is (their offsets index it), and
			// encoding/json escapes every C0 control byte and invalid UTF-8.
			js, err := json.Marshal(DiagnosticsJSON(cfg.Files, diags))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range js {
				if c < 0x20 {
					t.Fatalf("raw control byte %#x in JSON diagnostics: %s", c, js)
				}
			}
		})
	}
}

// The carets stay under the subject when escapes widen what precedes it.
func TestSnippetCaretsAfterEscapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.hcl")
	src := "twin \"a\" {\n  target = \"\x1b[1m\" junk\n}\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load([]string{path}, nil)
	var buf bytes.Buffer
	_ = WriteDiagnostics(&buf, cfg.Files, diags, 80, false)
	want := "    2:   target = \"\\x1b[1m\" junk\n" +
		"                            ^^^^\n"
	if !strings.Contains(buf.String(), want) {
		t.Errorf("want the carets under \"junk\":\n%s\ngot:\n%s", want, buf.String())
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
