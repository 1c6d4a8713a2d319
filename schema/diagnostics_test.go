package schema

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestWriteDiagnosticsGolden pins the rendering: file:line:col with the
// enclosing block, the source line with carets under the exact spot (also
// after multi-byte characters and tabs), heredocs, wrapped details, a
// diagnostic without a location, and colors.
func TestWriteDiagnosticsGolden(t *testing.T) {
	file := filepath.Join("testdata", "golden", "render.hcl")
	cfg, diags := Load([]string{file}, map[string]string{"undeclared": "secret-ish"})
	if len(diags) != 7 {
		t.Errorf("want 7 diagnostics, got %d: %v", len(diags), diags)
	}
	for _, tc := range []struct {
		golden string
		color  bool
	}{{"render.txt", false}, {"render.color.txt", true}} {
		var buf bytes.Buffer
		if err := WriteDiagnostics(&buf, cfg.Files, diags, 80, tc.color); err != nil {
			t.Fatal(err)
		}
		compareGolden(t, filepath.Join("testdata", "golden", tc.golden), buf.Bytes())
		if strings.Contains(buf.String(), "secret-ish") {
			t.Error("a -var value was echoed")
		}
	}
}

// TestTargetErrorPosition checks that a query error points at the exact
// character inside the .hcl file for literal strings and heredocs, and at
// the whole expression (with the query position in the detail) otherwise.
func TestTargetErrorPosition(t *testing.T) {
	for _, tc := range []struct {
		name, src        string
		line, col, bytes int    // the expected Subject (bytes = its length)
		text             string // the source text of the Subject
		detail           string
	}{
		// target starts at column 12; the query text at column 13.
		{name: "literal", src: `target = "deviceId IN ['a' 'b']"`, line: 2, col: 30, bytes: 1, text: "'"},
		{name: "after multibyte", src: `target = "tags.lieu = 'été' AND ("`, line: 2, col: 36, bytes: 1, text: `"`},
		{name: "end of input", src: `target = "tags.x = 1 AND"`, line: 2, col: 27, bytes: 1, text: `"`},
		{name: "heredoc", src: "target = <<EOT\ntags.x = 1 AND\n  tags.y = = 2\nEOT", line: 4, col: 12, bytes: 1, text: "="},
		{name: "escape", src: `target = "tags.x = \"a\" AND ("`, line: 2, col: 12, bytes: 22, text: `"tags.x = \"a\" AND ("`, detail: "column 19 of the query text"},
		{name: "interpolation", src: `target = "tags.x = ${quote("a")} AND ("`, line: 2, col: 12, bytes: 30, detail: "column 19 of the query text:\n  tags.x = 'a' AND ("},
		{name: "reference", src: "target = local.q", line: 2, col: 12, bytes: 7, text: "local.q", detail: "line 1, column 8 of the query text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := "twin \"t\" {\n  " + tc.src + "\n  tags = { a = 1 }\n}\nlocals {\n  q = \"tags.x ~ 1\"\n}\n"
			path := filepath.Join(dir, "t.hcl")
			if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			_, diags := Load([]string{path}, nil)
			if len(diags) != 1 || diags[0].Summary != "Invalid target query" {
				t.Fatalf("want one Invalid target query, got %v", diags)
			}
			s := diags[0].Subject
			if s.Start.Line != tc.line || s.Start.Column != tc.col || s.End.Byte-s.Start.Byte != tc.bytes {
				t.Errorf("subject %d:%d (+%d bytes), want %d:%d (+%d)", s.Start.Line, s.Start.Column, s.End.Byte-s.Start.Byte, tc.line, tc.col, tc.bytes)
			}
			// The byte offset and the line:col must agree with the file.
			lines := strings.Split(src, "\n")
			off := 0
			for i := 0; i < s.Start.Line-1; i++ {
				off += len(lines[i]) + 1
			}
			off += len(string([]rune(lines[s.Start.Line-1])[:s.Start.Column-1]))
			if off != s.Start.Byte {
				t.Errorf("subject byte %d does not match line:col (byte %d)", s.Start.Byte, off)
			}
			if got := string(s.SliceBytes([]byte(src))); tc.text != "" && got != tc.text {
				t.Errorf("subject text %q, want %q", got, tc.text)
			}
			if !strings.Contains(diags[0].Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", diags[0].Detail, tc.detail)
			}
		})
	}
}

// TestSecretsNeverEchoed feeds connection strings and sensitive variables
// through every error path that concerns them and checks that neither the
// diagnostics nor their rendering (ours or HCL's) nor the Hub's string forms
// contain the key.
func TestSecretsNeverEchoed(t *testing.T) {
	const key = "U0VDUkVULUtFWS0xMjM0NQ=="
	for _, tc := range []struct {
		name, src string
		vars      map[string]string
		env       string
		wantErr   bool
	}{
		{name: "device string literal", wantErr: true,
			src: `hub { connection_string = "HostName=h;DeviceId=d;SharedAccessKey=` + key + `" }`},
		{name: "no policy", wantErr: true,
			src: `hub { connection_string = "HostName=h;SharedAccessKey=` + key + `" }`},
		{name: "not pairs", wantErr: true,
			src: `hub { connection_string = "` + key + `" }`},
		{name: "number from var", wantErr: true, vars: map[string]string{"cs": key},
			src: `variable "cs" { type = number }` + "\n" + `hub { connection_string = var.cs }`},
		{name: "list from var", wantErr: true, vars: map[string]string{"cs": "[" + key},
			src: `variable "cs" { type = list(string) }` + "\n" + `hub { connection_string = var.cs }`},
		{name: "plain var used as number", wantErr: true, vars: map[string]string{"cs": key},
			src: `variable "cs" {}` + "\n" + `hub { connection_string = var.cs + 1 }`},
		{name: "sensitive var in a bad target", wantErr: true, vars: map[string]string{"cs": key},
			src: `variable "cs" { sensitive = true }` + "\n" + `twin "t" {
  target = "tags.x = ${var.cs} AND"
  tags = { a = 1 }
}`},
		{name: "env var of the wrong type", wantErr: true, env: key,
			src: `variable "cs" { type = bool }` + "\n" + `hub { connection_string = var.cs }`},
		{name: "valid, from a variable", vars: map[string]string{"cs": "HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key},
			src: `variable "cs" { sensitive = true }` + "\n" + `hub { connection_string = var.cs }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(EnvVarPrefix+"cs", tc.env)
			}
			path := filepath.Join(t.TempDir(), "hub.hcl")
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, diags := Load([]string{path}, tc.vars)
			if diags.HasErrors() != tc.wantErr {
				t.Fatalf("errors: %v, want %v: %v", diags.HasErrors(), tc.wantErr, diags)
			}
			var ours, theirs bytes.Buffer
			_ = WriteDiagnostics(&ours, cfg.Files, diags, 0, false)
			_ = hcl.NewDiagnosticTextWriter(&theirs, cfg.Files, 0, false).WriteDiagnostics(diags)
			for _, d := range diags {
				if strings.Contains(d.Summary+d.Detail, key) {
					t.Errorf("diagnostic text holds the key: %s: %s", d.Summary, d.Detail)
				}
				if d.Subject != nil && strings.Contains(string(d.Subject.SliceBytes(cfg.Files[d.Subject.Filename].Bytes)), key) {
					t.Errorf("diagnostic subject covers the key: %s", d.Summary)
				}
			}
			if strings.Contains(ours.String(), key) {
				t.Errorf("WriteDiagnostics printed the key:\n%s", ours.String())
			}
			if strings.Contains(theirs.String(), key) {
				t.Errorf("hcl's writer printed the key:\n%s", theirs.String())
			}
			if cfg.Hub != nil {
				if !strings.Contains(cfg.Hub.ConnectionString, key) {
					t.Errorf("the connection string was not loaded")
				}
				for _, s := range []string{cfg.Hub.String(), cfg.Hub.GoString()} {
					if strings.Contains(s, key) {
						t.Errorf("Hub string form holds the key: %s", s)
					}
				}
				b, _ := cfg.Hub.MarshalJSON()
				if strings.Contains(string(b), key) {
					t.Errorf("Hub JSON holds the key: %s", b)
				}
			}
		})
	}
}

func TestWrap(t *testing.T) {
	got := wrap("one two three four five\n  preformatted line that is long\nsix", 9)
	want := "one two\nthree\nfour five\n  preformatted line that is long\nsix"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if wrap("a b", 0) != "a b" {
		t.Error("width 0 must not wrap")
	}
}
