package schema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// TestDiagnosticsJSON checks the JSON form of the diagnostics the golden rendering test
// uses: the range of each, the snippet's lines, the highlight offsets that point at exactly
// the subject's text, the enclosing block, and that no -var value appears.
func TestDiagnosticsJSON(t *testing.T) {
	file := filepath.Join("testdata", "golden", "render.hcl")
	cfg, diags := Load([]string{file}, map[string]string{"undeclared": "secret-ish"})
	got := DiagnosticsJSON(cfg.Files, diags)
	if len(got) != len(diags) || len(got) == 0 {
		t.Fatalf("%d JSON diagnostics of %d", len(got), len(diags))
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range got {
		h := diags[i]
		if d.Severity != "error" || d.Summary != h.Summary || d.Detail != h.Detail {
			t.Errorf("%d: severity %q summary %q detail %q; want error and the diagnostic's", i, d.Severity, d.Summary, d.Detail)
		}
		if h.Subject == nil {
			if d.Range != nil || d.Snippet != nil {
				t.Errorf("%d: %q has no subject but a range or snippet", i, d.Summary)
			}
			continue
		}
		checkRange(t, d, *h.Subject, src)
	}
	byKey := got[2] // "Invalid key" on line 9
	if byKey.Summary != "Invalid key" || byKey.Snippet == nil {
		t.Fatalf("third diagnostic = %+v, want Invalid key with a snippet", byKey)
	}
	sn := byKey.Snippet
	if sn.StartLine != 9 || sn.Code != `  desired = { building = "43", "floor.number" = 3 }` ||
		sn.Code[sn.HighlightStartOffset:sn.HighlightEndOffset] != `"floor.number"` ||
		sn.Context == nil || *sn.Context != `twin "door_location"` {
		t.Errorf("snippet = %+v (context %v)", sn, sn.Context)
	}
	heredoc := got[3] // the unclosed parenthesis of the heredoc, with its attribute as context
	if s := heredoc.Snippet; s == nil || s.StartLine != 13 || strings.Count(s.Code, "\n") != 3 || !strings.HasSuffix(s.Code[:s.HighlightStartOffset], "\n") {
		t.Errorf("heredoc snippet = %+v", heredoc.Snippet)
	}
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret-ish") {
		t.Errorf("a -var value is in the JSON: %s", b)
	}
	checkShape(t, b)
}

// checkRange: the range is the subject, and the snippet's lines and highlight cover it.
func checkRange(t *testing.T, d JSONDiagnostic, subj hcl.Range, src []byte) {
	t.Helper()
	r := d.Range
	if r == nil || r.Filename != subj.Filename || r.Start.Line != subj.Start.Line || r.Start.Column != subj.Start.Column ||
		r.Start.Byte != subj.Start.Byte || r.End.Line != subj.End.Line || r.End.Byte != subj.End.Byte {
		t.Errorf("%q: range %+v, want the subject %v", d.Summary, r, subj)
		return
	}
	sn := d.Snippet
	if sn == nil {
		t.Errorf("%q: no snippet", d.Summary)
		return
	}
	if sn.StartLine > subj.Start.Line || !strings.Contains(string(src), sn.Code) {
		t.Errorf("%q: snippet from line %d is not the file's text around line %d: %q", d.Summary, sn.StartLine, subj.Start.Line, sn.Code)
	}
	if h := sn.Code[sn.HighlightStartOffset:sn.HighlightEndOffset]; subj.End.Line == subj.Start.Line && h != string(subj.SliceBytes(src)) {
		t.Errorf("%q: highlight %q, want the subject %q", d.Summary, h, subj.SliceBytes(src))
	}
}

// checkShape decodes the JSON as a reader would and checks the documented names and types.
func checkShape(t *testing.T, b []byte) {
	t.Helper()
	var ds []map[string]any
	if err := json.Unmarshal(b, &ds); err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		for _, k := range []string{"severity", "summary", "detail"} {
			if _, ok := d[k].(string); !ok {
				t.Errorf("%s is %T, want a string: %v", k, d[k], d)
			}
		}
		r, ok := d["range"].(map[string]any)
		if !ok {
			continue
		}
		for _, end := range []string{"start", "end"} {
			pos, _ := r[end].(map[string]any)
			for _, k := range []string{"line", "column", "byte"} {
				if _, ok := pos[k].(float64); !ok {
					t.Errorf("range.%s.%s is %T, want a number", end, k, pos[k])
				}
			}
		}
		sn, _ := d["snippet"].(map[string]any)
		if values, ok := sn["values"].([]any); !ok || len(values) != 0 {
			t.Errorf("snippet.values = %#v, want []", sn["values"])
		}
		for _, k := range []string{"start_line", "highlight_start_offset", "highlight_end_offset"} {
			if _, ok := sn[k].(float64); !ok {
				t.Errorf("snippet.%s is %T, want a number", k, sn[k])
			}
		}
	}
}

// TestDiagnosticsJSONNeverEchoesSecrets: neither a connection string written in the hub
// block nor the value of a sensitive variable reaches the JSON form, snippets included.
func TestDiagnosticsJSONNeverEchoesSecrets(t *testing.T) {
	const key = "U0VDUkVULUtFWS0xMjM0NQ=="
	for name, tc := range map[string]struct {
		src  string
		vars map[string]string
	}{
		"device string, value on the block's line": {src: `hub { connection_string = "HostName=h;DeviceId=d;SharedAccessKey=` + key + `" }`},
		"no policy, value on its own line":         {src: "hub {\n  connection_string = \"HostName=h;SharedAccessKey=" + key + "\"\n}\n"},
		"valid literal (a warning)":                {src: "hub {\n  connection_string = \"HostName=h;SharedAccessKeyName=p;SharedAccessKey=" + key + "\"\n}\n"},
		"sensitive var in a bad target": {vars: map[string]string{"cs": key},
			src: "variable \"cs\" { sensitive = true }\ntwin \"t\" {\n  target = \"tags.x = ${var.cs} AND\"\n  tags = { a = 1 }\n}\n"},
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hub.hcl")
			if err := os.WriteFile(path, []byte(tc.src), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, diags := Load([]string{path}, tc.vars)
			if len(diags) == 0 {
				t.Fatal("no diagnostic")
			}
			b, err := json.Marshal(DiagnosticsJSON(cfg.Files, diags))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), key) {
				t.Errorf("the JSON holds the secret: %s", b)
			}
			if !strings.Contains(string(b), `"summary"`) {
				t.Errorf("no diagnostic in %s", b)
			}
		})
	}
}
