package schema

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A sensitive variable's default that does not match its type is reported at the block
// header: a diagnostic at the default would print the secret in its source snippet.
func TestSensitiveDefaultNeverInSnippet(t *testing.T) {
	const secret = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="
	file := filepath.Join(t.TempDir(), "s.hcl")
	src := "variable \"cs\" {\n  type      = number\n  sensitive = true\n  default   = \"HostName=h;SharedAccessKeyName=o;SharedAccessKey=" + secret + "\"\n}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, diags := Load([]string{file}, nil)
	if !diags.HasErrors() {
		t.Fatal("a string default of a number variable was accepted")
	}
	var buf bytes.Buffer
	if err := WriteDiagnostics(&buf, cfg.Files, diags, 0, false); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if strings.Contains(out, secret) || strings.Contains(out, "SharedAccessKey=") {
		t.Errorf("diagnostics show the sensitive default:\n%s", out)
	}
	if !strings.Contains(out, "Invalid default value for variable") || !strings.Contains(out, "s.hcl:1:") {
		t.Errorf("diagnostic missing or not located at the variable block:\n%s", out)
	}
}
