package corpus

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/iotplan/iotplan/internal/cli"
	"github.com/iotplan/iotplan/internal/hub/sim"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/sas"
	"github.com/iotplan/iotplan/schema"
)

// expectDiags checks "@expect ok" or "@expect error TEXT" against diagnostics: with error,
// some error diagnostic's summary or detail contains TEXT.
func expectDiags(t *testing.T, c *testCase, want string, diags hcl.Diagnostics) {
	t.Helper()
	verb, text, _ := strings.Cut(want, " ")
	switch verb {
	case "ok":
		if diags.HasErrors() {
			t.Errorf("%s: want no errors, got %v", c.path, diags)
		}
	case "error":
		if text == "" {
			t.Fatalf("%s: @expect error needs the text of the expected diagnostic", c.path)
		}
		for _, d := range diags {
			if d.Severity == hcl.DiagError && (strings.Contains(d.Summary, text) || strings.Contains(d.Detail, text)) {
				return
			}
		}
		t.Errorf("%s: want an error mentioning %q, got %v", c.path, text, diags)
	default:
		t.Fatalf("%s: @expect %q: want ok or error TEXT", c.path, want)
	}
}

// subjectsInside: every diagnostic that names the file points inside it.
func subjectsInside(t *testing.T, c *testCase, diags hcl.Diagnostics, filename string, size int) {
	t.Helper()
	for _, d := range diags {
		if s := d.Subject; s != nil && s.Filename == filename && (s.Start.Byte < 0 || s.Start.Byte > s.End.Byte || s.End.Byte > size+1) {
			t.Errorf("%s: %q points outside the file: %v", c.path, d.Summary, s)
		}
	}
}

// TestFleetCorpus: broken fleet files are refused by the fleet loader with a diagnostic.
func TestFleetCorpus(t *testing.T) {
	for _, c := range loadCases(t, "fleet") {
		t.Run(c.name, func(t *testing.T) {
			safely(t, c, func() {
				f, diags := sim.ParseFleet(c.path, c.whole)
				expectDiags(t, c, c.dir("expect"), diags)
				if !diags.HasErrors() && f == nil {
					t.Errorf("%s: no errors and no fleet", c.path)
				}
				subjectsInside(t, c, diags, c.path, len(c.whole))
				var buf bytes.Buffer
				w := hcl.NewDiagnosticTextWriter(&buf, map[string]*hcl.File{c.path: {Bytes: c.whole}}, 80, false)
				if err := w.WriteDiagnostics(diags); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

// TestConfigCorpus: broken iotplan configurations are refused by schema.Load with a
// diagnostic, and the diagnostics render.
func TestConfigCorpus(t *testing.T) {
	for _, c := range loadCases(t, "config") {
		t.Run(c.name, func(t *testing.T) {
			safely(t, c, func() {
				vars := map[string]string{}
				for _, v := range c.dirs["var"] {
					k, val, _ := strings.Cut(v, "=")
					vars[k] = val
				}
				cfg, diags := schema.Load([]string{c.path}, vars)
				if cfg == nil {
					t.Fatal("nil config")
				}
				expectDiags(t, c, c.dir("expect"), diags)
				subjectsInside(t, c, diags, c.path, len(c.whole))
				if err := schema.WriteDiagnostics(io.Discard, cfg.Files, diags, 80, false); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

var keyRE = regexp.MustCompile(`(?i)SharedAccessKey=([^;]*)`)

// TestConnStrCorpus: "@parse ok | error TEXT" (sas.ParseConnectionString), "@client error
// TEXT" (hubclient.New, which needs a service string), "@call STATUS" (the string reaches the
// corpus hub — {{host}} — and the hub answers STATUS). Every string that parsing or the
// client refuses is also given to the CLI as IOTHUB_CONNECTION_STRING: `iotplan plan` must
// fail saying where the string came from, in a bounded message without the key.
func TestConnStrCorpus(t *testing.T) {
	ch := startCorpusHub(t)
	cfgDir := t.TempDir()
	cfgPath := filepath.Join(cfgDir, "main.hcl")
	if err := os.WriteFile(cfgPath, []byte("twin \"t\" {\n  target  = \"deviceId = 'x'\"\n  desired = { a = 1 }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range loadCases(t, "connstr") {
		t.Run(c.name, func(t *testing.T) {
			safely(t, c, func() {
				funcs := ch.funcs(t)
				s := strings.TrimSuffix(string(c.render(t, funcs, nil)), "\n")
				key := ""
				if m := keyRE.FindStringSubmatch(s); m != nil && len(strings.TrimSpace(m[1])) >= 8 {
					key = strings.TrimSpace(m[1])
				}
				_, perr := sas.ParseConnectionString(s)
				verb, text, _ := strings.Cut(c.dir("parse"), " ")
				switch {
				case verb == "ok" && perr != nil:
					t.Fatalf("%s: ParseConnectionString: %v, want ok", c.path, perr)
				case verb == "error" && (perr == nil || !strings.Contains(perr.Error(), text)):
					t.Fatalf("%s: ParseConnectionString: %v, want an error mentioning %q", c.path, perr, text)
				case verb != "ok" && verb != "error":
					t.Fatalf("%s: @parse ok | error TEXT", c.path)
				}
				if perr != nil {
					checkNoSecret(t, c, perr.Error(), key)
				}
				rejected := perr != nil
				if want := c.dir("client"); want != "" || perr == nil {
					hc, err := hubclient.New(s, hubclient.WithRootCAs(ch.h.RootCAs()), hubclient.WithRetry(1, time.Millisecond, time.Millisecond))
					_, text, _ := strings.Cut(want, " ")
					switch {
					case want == "" && err != nil && perr == nil:
						t.Fatalf("%s: hubclient.New: %v, want ok", c.path, err)
					case want != "" && (err == nil || !strings.Contains(err.Error(), text)):
						t.Fatalf("%s: hubclient.New: %v, want an error mentioning %q", c.path, err, text)
					}
					if err != nil {
						checkNoSecret(t, c, err.Error(), key)
						rejected = true
					} else {
						defer hc.Close()
						if want := c.dir("call"); want != "" {
							status, _ := strconv.Atoi(want)
							ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
							defer cancel()
							_, err := hc.GetTwin(ctx, "corpus-1")
							if !hubclient.IsStatus(err, status) {
								t.Errorf("%s: GetTwin: %v, want HTTP %d", c.path, err, status)
							}
							if err != nil {
								checkNoSecret(t, c, err.Error(), key)
							}
							ch.stillServes(t)
						}
					}
				}
				if rejected {
					runCLI(t, c, cfgPath, s, key)
				}
			})
		})
	}
}

func checkNoSecret(t *testing.T, c *testCase, msg, key string) {
	t.Helper()
	if key != "" && strings.Contains(msg, key) {
		t.Errorf("%s: the error shows the key: %.200s", c.path, msg)
	}
	if len(msg) > 1000 {
		t.Errorf("%s: a %d-byte error message (it must not echo the input)", c.path, len(msg))
	}
}

// runCLI runs `iotplan plan` with the string in IOTHUB_CONNECTION_STRING.
func runCLI(t *testing.T, c *testCase, cfgPath, s, key string) {
	t.Helper()
	if strings.ContainsRune(s, 0) {
		return // no environment variable can hold a NUL
	}
	t.Setenv("IOTHUB_CONNECTION_STRING", s)
	var out, errb bytes.Buffer
	code := cli.Main([]string{"plan", "-no-color", cfgPath}, cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errb, Width: 80})
	if code == 0 {
		t.Fatalf("%s: iotplan plan exited 0 with a bad connection string:\n%s", c.path, out.String())
	}
	msg := errb.String()
	if !strings.Contains(msg, "IOTHUB_CONNECTION_STRING") {
		t.Errorf("%s: the CLI's error does not say where the string came from:\n%.500s", c.path, msg)
	}
	checkNoSecret(t, c, msg+out.String(), key)
}
