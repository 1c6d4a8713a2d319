package cli

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

// update rewrites generated and golden files instead of comparing with them: docs/cli.md
// (TestCLIDocs) and testdata/fmt/*.golden (the fmt tests).
var update = flag.Bool("update", false, "rewrite docs/cli.md and testdata/fmt/*.golden from the current output")

const cliDocsFile = "../../docs/cli.md"

// TestCLIDocs fails when docs/cli.md no longer says what the commands are: regenerate it
// whenever a command, flag or help text changes.
func TestCLIDocs(t *testing.T) {
	var b bytes.Buffer
	if err := writeCLIDocs(&b); err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(cliDocsFile, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(cliDocsFile)
	if err != nil {
		t.Fatalf("%v: generate it with\n  %s", err, cliDocsRegenerate)
	}
	if got := b.String(); got != string(want) {
		t.Errorf("docs/cli.md is out of date with the commands; regenerate it with\n  %s\nand commit it. First difference:\n%s",
			cliDocsRegenerate, firstDifference(string(want), got))
	}
	for _, section := range []string{"## iotplan fmt\n", "## iotplan query\n", "## iotplan version\n", "## iotplan completion bash\n", "## iotplan plan\n",
		"| `-check` |", "| `-top N` |", "| `-list` | `true` |"} {
		if !strings.Contains(b.String(), section) {
			t.Errorf("the generated reference lacks %q", section)
		}
	}
}

// firstDifference shows the first line where the file and the commands differ.
func firstDifference(file, generated string) string {
	a, b := strings.Split(file, "\n"), strings.Split(generated, "\n")
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return fmt.Sprintf("  line %d of docs/cli.md: %q\n  the commands say:      %q", i+1, x, y)
		}
	}
	return ""
}
