package cli

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "__start_iotplan",
		"zsh":        "#compdef iotplan",
		"fish":       "complete -c iotplan",
		"powershell": "Register-ArgumentCompleter",
	} {
		r := iotplan(t, "completion", shell)
		if r.code != 0 || !strings.Contains(r.out, want) || r.err != "" {
			t.Errorf("completion %s: exit %d, stderr %q, script lacks %q", shell, r.code, r.err, want)
		}
	}
}

// complete asks for completions as the shell scripts do ('iotplan __complete ARGS... WORD')
// and returns them and the directive (cobra's ShellCompDirective as a number).
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	r := iotplan(t, append([]string{"__complete"}, args...)...)
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if r.code != 0 || len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		t.Fatalf("__complete %q: exit %d\n%s\n%s", args, r.code, r.out, r.err)
	}
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompletionOfArgumentsAndFlags(t *testing.T) {
	t.Chdir(t.TempDir())
	config := "twin \"door_location\" {\n  target = \"*\"\n}\nmethod \"lock_door\" {\n  target = \"*\"\n  method = \"lockDoor\"\n}\n"
	if err := os.WriteFile("main.hcl", []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	const fileExt, noFiles, dirs = ":8", ":4", ":16" // cobra's FilterFileExt, NoFileComp, FilterDirs
	for _, tc := range []struct {
		args      []string
		want      []string
		directive string
	}{
		{[]string{"plan", ""}, []string{"hcl"}, fileExt},
		{[]string{"plan", "a.hcl", ""}, []string{"hcl"}, fileExt},
		{[]string{"fmt", ""}, []string{"hcl", "vars"}, fileExt},
		{[]string{"state", "rm", ""}, []string{"method.lock_door", "twin.door_location"}, noFiles},
		{[]string{"query", ""}, nil, noFiles},
		{[]string{"query", "SELECT * FROM devices", ""}, []string{"hcl"}, fileExt},
		{[]string{"jobs", "show", ""}, nil, noFiles},
		{[]string{"query", "-query-dialect", ""}, []string{"documented", "extended"}, noFiles},
		{[]string{"plan", "-hub-tier", ""}, []string{"F1", "S1", "S2", "S3"}, noFiles},
		{[]string{"plan", "-data", ""}, nil, dirs},
		{[]string{"jobs", "list", "-type", ""}, []string{"scheduleUpdateTwin", "scheduleDeviceMethod"}, noFiles},
	} {
		got, directive := complete(t, tc.args...)
		if !slices.Equal(got, tc.want) || directive != tc.directive {
			t.Errorf("completing %q: %q %s, want %q %s", tc.args, got, directive, tc.want, tc.directive)
		}
	}
}

func TestUsageArgs(t *testing.T) {
	for use, want := range map[string][]string{
		"plan [-out FILE] [-detailed-exitcode] [PATH...]":                 {"[PATH...]"},
		"apply [-auto-approve] [-var name=value] [PLANFILE | PATH...]":    {"[PLANFILE | PATH...]"},
		"show ID [-failed-only] [-limit N] [-json] [-dev] [PATH]":         {"ID", "[PATH]"},
		"query [-json] [-top N] [-dev] 'SELECT ...' [PATH]":               {"'SELECT ...'", "[PATH]"},
		"dev [--data DIR] [--tier F1|S1|S2|S3 [--units N]] [--policies]":  nil,
		"rm ADDR... [-lock=false] [-lock-timeout D] [-dev] [-state NAME]": {"ADDR..."},
		"force-unlock [-force] LOCK_ID [-dev] [-state NAME]":              {"LOCK_ID"},
	} {
		if got := usageArgs(use); !slices.Equal(got, want) {
			t.Errorf("usageArgs(%q) = %q, want %q", use, got, want)
		}
	}
}
