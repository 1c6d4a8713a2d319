package schema

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/iotplan/iotplan/internal/query"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// expectation is one inline `# ERROR: summary` (or WARNING) comment: a
// diagnostic of that severity whose summary contains the text and whose
// Subject starts on that line. Line 0 means a diagnostic without a Subject
// (`# GLOBAL-ERROR: summary`, anywhere in the file).
type expectation struct {
	file    string
	line    int
	sev     hcl.DiagnosticSeverity
	summary string
	matched bool
}

var expectRe = regexp.MustCompile(`#\s*(GLOBAL-ERROR|ERROR|WARNING):\s*([^#]*)`)
var varRe = regexp.MustCompile(`^#\s*VAR:\s*([A-Za-z0-9_-]+)=(.*)$`)

// readExpectations parses the inline expectations and `# VAR: name=value`
// lines (the -var values to load the file with).
func readExpectations(t *testing.T, file string) ([]*expectation, map[string]string) {
	t.Helper()
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var exps []*expectation
	vars := map[string]string{}
	for i, line := range strings.Split(string(src), "\n") {
		if m := varRe.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			vars[m[1]] = m[2]
			continue
		}
		for _, m := range expectRe.FindAllStringSubmatch(line, -1) {
			e := &expectation{file: file, line: i + 1, sev: hcl.DiagError, summary: strings.TrimSpace(m[2])}
			switch m[1] {
			case "WARNING":
				e.sev = hcl.DiagWarning
			case "GLOBAL-ERROR":
				e.line = 0
			}
			exps = append(exps, e)
		}
	}
	return exps, vars
}

// checkExpectations matches every diagnostic to exactly one expectation.
func checkExpectations(t *testing.T, exps []*expectation, diags hcl.Diagnostics) {
	t.Helper()
	for _, d := range diags {
		line, file := 0, ""
		if d.Subject != nil {
			line, file = d.Subject.Start.Line, d.Subject.Filename
		}
		found := false
		for _, e := range exps {
			if e.matched || e.sev != d.Severity || e.line != line || (line != 0 && e.file != file) ||
				!strings.Contains(d.Summary, e.summary) {
				continue
			}
			e.matched, found = true, true
			break
		}
		if !found {
			t.Errorf("unexpected diagnostic at %s:%d: %s: %s", file, line, d.Summary, d.Detail)
		}
	}
	for _, e := range exps {
		if !e.matched {
			kind := "error"
			if e.sev == hcl.DiagWarning {
				kind = "warning"
			}
			t.Errorf("%s:%d: expected %s %q, got none", e.file, e.line, kind, e.summary)
		}
	}
}

func testFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no test files in testdata/%s", dir)
	}
	return files
}

// TestInvalid loads each testdata/invalid file and checks that it produces
// exactly the diagnostics its comments announce, on the announced lines.
func TestInvalid(t *testing.T) {
	for _, file := range testFiles(t, "invalid") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			exps, vars := readExpectations(t, file)
			hasErr := false
			for _, e := range exps {
				hasErr = hasErr || e.sev == hcl.DiagError
			}
			if !hasErr {
				t.Fatal("an invalid test file must announce at least one # ERROR:")
			}
			cfg, diags := Load([]string{file}, vars)
			if cfg == nil || cfg.Files == nil {
				t.Fatal("Load returned no files map")
			}
			checkExpectations(t, exps, diags)
			// Rendering every diagnostic must work and name the file.
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, cfg.Files, diags, 80, false); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), file+":") {
				t.Errorf("rendered diagnostics do not name %s:\n%s", file, buf.String())
			}
		})
	}
}

// TestValid loads each testdata/valid file without errors (warnings only
// where announced) and compares the decoded configuration with its golden
// JSON, so that a valid file is also decoded right.
func TestValid(t *testing.T) {
	files := testFiles(t, "valid")
	jsonFiles, _ := filepath.Glob(filepath.Join("testdata", "valid", "*.hcl.json"))
	files = append(files, jsonFiles...)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			exps, vars := readExpectations(t, file)
			cfg, diags := Load([]string{file}, vars)
			checkExpectations(t, exps, diags)
			if diags.HasErrors() {
				return
			}
			got := dumpConfig(t, cfg)
			golden := strings.TrimSuffix(strings.TrimSuffix(file, ".json"), ".hcl") + ".golden.json"
			compareGolden(t, golden, got)
		})
	}
}

func compareGolden(t *testing.T, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./schema -update to create it, then review it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test ./schema -update rewrites it):\n--- got\n%s\n--- want\n%s", golden, got, want)
	}
}

// dumpConfig is a stable JSON view of a Config for golden files.
func dumpConfig(t *testing.T, cfg *Config) []byte {
	t.Helper()
	type rng struct{ Line, Col int }
	at := func(r hcl.Range) rng { return rng{r.Start.Line, r.Start.Column} }
	out := map[string]any{}
	if cfg.Hub != nil {
		// The golden file shows that the secret is there, not what it is.
		out["hub"] = map[string]any{"connection_string_length": len(cfg.Hub.ConnectionString), "decl": at(cfg.Hub.DeclRange),
			"tier": cfg.Hub.Tier, "units": cfg.Hub.Units}
	}
	var vars []any
	for _, v := range cfg.Variables {
		val := "(unresolved)"
		if v.Value != cty.NilVal && v.Value.IsWhollyKnown() {
			if v.Sensitive {
				val = "(sensitive)"
			} else {
				b, err := ctyjson.Marshal(v.Value, v.Value.Type())
				if err != nil {
					t.Fatal(err)
				}
				val = string(b)
			}
		}
		vars = append(vars, map[string]any{"name": v.Name, "type": v.Type.FriendlyName(), "sensitive": v.Sensitive, "value": val, "description": v.Description})
	}
	out["variables"] = vars
	var twins []any
	for _, tw := range cfg.Twins {
		twins = append(twins, map[string]any{
			"name": tw.Name, "addr": tw.Addr, "decl": at(tw.DeclRange),
			"target_src": tw.TargetSrc, "target": query.Format(tw.Target), "target_at": at(tw.TargetRange),
			"desired": tw.Desired, "tags": tw.Tags, "max_execution": tw.MaxExecution.String(), "keep_on_removal": tw.KeepOnRemoval,
		})
	}
	out["twins"] = twins
	var methods []any
	for _, m := range cfg.Methods {
		start := ""
		if !m.StartTime.IsZero() {
			start = m.StartTime.Format(time.RFC3339Nano)
		}
		methods = append(methods, map[string]any{
			"name": m.Name, "addr": m.Addr, "decl": at(m.DeclRange),
			"target_src": m.TargetSrc, "target": query.Format(m.Target), "target_at": at(m.TargetRange),
			"method": m.Method, "payload": m.Payload,
			"response_timeout": m.ResponseTimeout.String(), "connect_timeout": m.ConnectTimeout.String(),
			"max_execution": m.MaxExecution.String(), "start_time": start,
			"triggers": m.Triggers, "triggers_set": m.TriggersSet,
		})
	}
	out["methods"] = methods
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestExamples loads every iotplan configuration under examples/ with no
// diagnostics at all. Other HCL files there (the local hub's fleet files)
// are recognised by having no top-level twin or method block and skipped.
func TestExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	loaded := 0
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^(twin|method)\s+"`).Match(src) {
			continue
		}
		loaded++
		t.Run(filepath.Base(file), func(t *testing.T) {
			cfg, diags := Load([]string{file}, nil)
			if len(diags) > 0 {
				var buf bytes.Buffer
				_ = WriteDiagnostics(&buf, cfg.Files, diags, 0, false)
				t.Fatalf("%d diagnostics:\n%s", len(diags), buf.String())
			}
			if len(cfg.Twins)+len(cfg.Methods) == 0 {
				t.Fatal("no twin or method decoded")
			}
		})
	}
	if loaded == 0 {
		t.Fatal("no iotplan configuration found in examples/")
	}
}

// TestLockdoorExample pins the tutorial's meaning: the values the seed's
// service program sends to the hub.
func TestLockdoorExample(t *testing.T) {
	cfg, diags := Load([]string{filepath.Join("..", "examples", "lockdoor.hcl")}, nil)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	if len(cfg.Twins) != 1 || len(cfg.Methods) != 1 || cfg.Hub != nil {
		t.Fatalf("want 1 twin, 1 method, no hub; got %d, %d, %v", len(cfg.Twins), len(cfg.Methods), cfg.Hub)
	}
	tw, m := cfg.Twins[0], cfg.Methods[0]
	wantTarget := query.In(query.P("deviceId"), "myDeviceId")
	if tw.Addr != "twin.door_location" || !query.Equal(tw.Target, wantTarget) || tw.TargetSrc != "deviceId IN ['myDeviceId']" {
		t.Errorf("twin: %s target %q", tw.Addr, tw.TargetSrc)
	}
	if fmt.Sprint(tw.Desired) != fmt.Sprint(map[string]any{"building": "43", "floor": float64(3)}) || tw.Tags != nil {
		t.Errorf("twin desired %#v tags %#v", tw.Desired, tw.Tags)
	}
	if tw.Desired["building"] != "43" || tw.Desired["floor"] != float64(3) {
		t.Errorf("desired types: %T %T", tw.Desired["building"], tw.Desired["floor"])
	}
	if m.Addr != "method.lock_door" || m.Method != "lockDoor" || m.Payload != nil ||
		!query.Equal(m.Target, wantTarget) || m.TargetSrc != tw.TargetSrc ||
		m.ResponseTimeout != 15*time.Second || m.ConnectTimeout != 0 || m.MaxExecution != 300*time.Second ||
		!m.StartTime.IsZero() {
		t.Errorf("method: %+v", *m)
	}
}

// TestDirectoryLoad loads a directory: every .hcl and .hcl.json file in it,
// sorted by name, declaration order preserved; hidden and backup files
// skipped; a file named twice is loaded once.
func TestDirectoryLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.hcl", `twin "b1" {
  target = "*"
  tags = { x = 1 }
}
twin "b2" {
  target = "*"
  tags = { x = 2 }
}`)
	write("a.hcl", `twin "a" {
  target = local.all
  tags = { x = 0 }
}`)
	write("c.hcl.json", `{"locals": {"all": "*"}, "method": {"m": {"target": "${twin.a.target}", "method": "ping"}}}`)
	write(".hidden.hcl", `this is not HCL`)
	write("d.hcl~", `neither is this`)
	write("notes.txt", `nor this`)
	cfg, diags := Load([]string{dir, filepath.Join(dir, "a.hcl")}, nil)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	var names []string
	for _, tw := range cfg.Twins {
		names = append(names, tw.Name)
	}
	if got := strings.Join(names, ","); got != "a,b1,b2" {
		t.Errorf("twins %s, want a,b1,b2", got)
	}
	if len(cfg.Methods) != 1 || cfg.Methods[0].TargetSrc != "*" {
		t.Errorf("methods: %+v", cfg.Methods)
	}
	if len(cfg.Files) != 3 {
		t.Errorf("%d files parsed, want 3", len(cfg.Files))
	}
}

func TestLoadPathErrors(t *testing.T) {
	_, diags := Load(nil, nil)
	if !diags.HasErrors() || diags[0].Summary != "No configuration files" {
		t.Errorf("no paths: %v", diags)
	}
	_, diags = Load([]string{filepath.Join(t.TempDir(), "missing.hcl")}, nil)
	if !diags.HasErrors() || !strings.Contains(diags[0].Detail, "no such file") {
		t.Errorf("missing file: %v", diags)
	}
	_, diags = Load([]string{t.TempDir()}, nil)
	if !diags.HasErrors() || diags[0].Summary != "No configuration files" {
		t.Errorf("empty dir: %v", diags)
	}
}

// TestDiagnosticsSorted guards the determinism of the order of diagnostics
// (map iteration must not leak into it): two loads render identically.
func TestDiagnosticsDeterministic(t *testing.T) {
	for _, file := range testFiles(t, "invalid") {
		_, vars := readExpectations(t, file)
		render := func() string {
			cfg, diags := Load([]string{file}, vars)
			var buf bytes.Buffer
			_ = WriteDiagnostics(&buf, cfg.Files, diags, 0, false)
			return buf.String()
		}
		first := render()
		for i := 0; i < 5; i++ {
			if render() != first {
				t.Fatalf("%s: diagnostics differ between loads", file)
			}
		}
	}
}
