package schema

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoad: no input makes Load or WriteDiagnostics panic, and every
// diagnostic's subject lies inside the file it names (the target position
// mapping computes ranges by hand). Inputs starting with "{" are also tried
// as JSON syntax. Seeds: testdata/fuzz/FuzzLoad plus every testdata and
// example file. Run: go test -run='^$' -fuzz=FuzzLoad -fuzztime=2m ./schema
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "*.hcl"))
	more, _ := filepath.Glob(filepath.Join("testdata", "*", "*.hcl.json"))
	examples, _ := filepath.Glob(filepath.Join("..", "examples", "*.hcl"))
	for _, s := range append(append(seeds, more...), examples...) {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		name := "fuzz.hcl"
		if strings.HasPrefix(strings.TrimSpace(string(src)), "{") {
			name = "fuzz.hcl.json"
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := Load([]string{path}, map[string]string{"site": "x'y", "n": "3"})
		if cfg == nil {
			t.Fatal("nil config")
		}
		for _, d := range diags {
			if d.Subject == nil {
				continue
			}
			file := cfg.Files[d.Subject.Filename]
			if file == nil {
				continue // e.g. a diagnostic about text given with -var
			}
			s := d.Subject
			if s.Start.Byte < 0 || s.Start.Byte > s.End.Byte || s.End.Byte > len(file.Bytes)+1 {
				t.Errorf("%s: subject %v outside the file (%d bytes)", d.Summary, s, len(file.Bytes))
			}
		}
		if !diags.HasErrors() {
			for _, tw := range cfg.Twins {
				if tw.Target == nil || (tw.Desired == nil && tw.Tags == nil) {
					t.Errorf("twin %s decoded without target or keys", tw.Name)
				}
			}
			for _, m := range cfg.Methods {
				if m.Target == nil || m.Method == "" {
					t.Errorf("method %s decoded without target or method", m.Name)
				}
			}
		}
		if err := WriteDiagnostics(io.Discard, cfg.Files, diags, 80, true); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzVarFile: no variable file makes LoadWith or WriteDiagnostics panic, and no diagnostic
// points outside the file it names. Run: go test -run='^$' -fuzz=FuzzVarFile -fuzztime=1m ./schema
func FuzzVarFile(f *testing.F) {
	for _, s := range []string{"site = \"hq\"\n", "floors = { \"41\" = 1 }\nsite = null\n", "site = var.x\n",
		"token = 12\n", "{\"site\": \"hq\"}", "block {}\n", "site = \"unterminated\n"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	cfgPath := filepath.Join(dir, "main.hcl")
	src := `
variable "site" {
  type = string
  validation {
    condition     = length(var.site) < 10
    error_message = "short"
  }
}
variable "floors" {
  type    = map(number)
  default = {}
}
variable "token" {
  default   = "t"
  sensitive = true
}
twin "t" {
  for_each = var.floors
  target   = "tags.site = ${quote(var.site)}"
  desired  = { floor = each.value }
}`
	if err := os.WriteFile(cfgPath, []byte(src), 0o644); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, vars []byte) {
		name := filepath.Join(dir, "fuzz.vars")
		if strings.HasPrefix(strings.TrimSpace(string(vars)), "{") {
			name += ".json"
		}
		if err := os.WriteFile(name, vars, 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(name)
		cfg, diags := LoadWith([]string{cfgPath}, Options{Args: []VarArg{{File: name}}, NoAutoVars: true})
		for _, d := range diags {
			if d.Subject == nil || cfg.Files[d.Subject.Filename] == nil {
				continue
			}
			if s, n := d.Subject, len(cfg.Files[d.Subject.Filename].Bytes); s.Start.Byte < 0 || s.Start.Byte > s.End.Byte || s.End.Byte > n+1 {
				t.Errorf("%s: subject %v outside the file (%d bytes)", d.Summary, s, n)
			}
		}
		if err := WriteDiagnostics(io.Discard, cfg.Files, diags, 80, false); err != nil {
			t.Fatal(err)
		}
	})
}
