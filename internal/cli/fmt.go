package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/schema"
)

// exitNotFormatted is the exit code of 'fmt -check' when some input is not formatted:
// terraform fmt -check's 3 (https://developer.hashicorp.com/terraform/cli/commands/fmt says
// "non-zero"; Terraform's own code returns 3), so CI scripts written for Terraform work.
const exitNotFormatted = 3

// fmtExtensions are the files fmt formats: configuration (.hcl) and variable files (.vars),
// both HCL native syntax. JSON files (.hcl.json) are left alone, as terraform fmt leaves
// .tf.json.
var fmtExtensions = []string{".hcl", ".vars"}

// stdinName names standard input in diagnostics and diffs.
const stdinName = "<stdin>"

type fmtOptions struct {
	check, diff, recursive, list, write, noColor bool
}

func newFmtCmd(s Streams) *cobra.Command {
	o := &fmtOptions{}
	cmd := &cobra.Command{
		Use:   "fmt [-check] [-diff] [-recursive] [-list=false] [-write=false] [PATH... | -]",
		Short: "Rewrite configuration and variable files in the canonical format",
		Long: `Rewrites .hcl configuration files and .vars variable files in the canonical
format and style (HCL's own formatter, as terraform fmt) and lists the files it
changed. JSON files (.hcl.json) are left alone; a named file of another kind is
refused.

PATH is a file or a directory (default: the current directory); a directory
contributes its .hcl and .vars files, and with -recursive those of its
subdirectories (hidden ones skipped). "-" reads standard input and writes the
formatted text to standard output.

Every file is parsed before any is written: a file with a syntax error is
reported with its location and nothing is written. A file is replaced whole
(written beside it, then renamed over it), never left half written.

Exit codes: 0 success; 1 error (a syntax error, a file that is not HCL); with
-check, 3 when some input is not formatted (terraform fmt -check's code).`,
		RunE: func(_ *cobra.Command, args []string) error { return runFmt(s, o, args) },
	}
	fs := cmd.Flags()
	fs.BoolVar(&o.check, "check", false, "write nothing; exit 3 when some input is not formatted (listing it)")
	fs.BoolVar(&o.diff, "diff", false, "show the formatting changes as a unified diff")
	fs.BoolVar(&o.recursive, "recursive", false, "also format the files in subdirectories")
	fs.BoolVar(&o.list, "list", true, "list the files whose formatting changed (-list=false: do not)")
	fs.BoolVar(&o.write, "write", true, "write the formatted files (-write=false: do not; implied by -check and -)")
	fs.BoolVar(&o.noColor, "no-color", false, "disable color in diagnostics")
	return cmd
}

func runFmt(s Streams, o *fmtOptions, args []string) error {
	if slices.Contains(args, "-") {
		if len(args) > 1 {
			return flagErrorf(`"-" (standard input) cannot be formatted together with files`)
		}
		return fmtStdin(s, o)
	}
	if len(args) == 0 {
		args = []string{"."}
	}
	paths, err := fmtPaths(args, o.recursive)
	if err != nil {
		return err
	}
	files, err := formatFiles(s, o, paths)
	if err != nil {
		return err
	}
	changed := 0
	for _, f := range files {
		if bytes.Equal(f.src, f.out) {
			continue
		}
		changed++
		if err := reportFmt(s, o, f); err != nil {
			return err
		}
	}
	if o.check && changed > 0 {
		return &silentError{exitNotFormatted}
	}
	return nil
}

// formattedFile is one file read and formatted.
type formattedFile struct {
	path     string
	src, out []byte
}

// reportFmt lists, diffs and writes one file that formatting changed, as the flags say.
// With -list=false and -write=false and no -diff, the formatted text is what is shown
// (terraform fmt does the same).
func reportFmt(s Streams, o *fmtOptions, f formattedFile) error {
	write := o.write && !o.check
	if o.list {
		fmt.Fprintln(s.Out, f.path)
	}
	if o.diff {
		fmt.Fprint(s.Out, unifiedDiff(filepath.ToSlash(f.path), f.src, f.out))
	}
	if !o.list && !o.diff && !write && !o.check {
		s.Out.Write(f.out)
	}
	if write {
		if err := replaceFile(f.path, f.out); err != nil {
			return fmt.Errorf("writing %s: %w", f.path, err)
		}
	}
	return nil
}

// fmtStdin formats standard input to standard output: the formatted text, or with -diff
// the diff, or with -check nothing (the exit code says).
func fmtStdin(s Streams, o *fmtOptions) error {
	src, err := io.ReadAll(s.In)
	if err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	out, f, diags := formatSource(stdinName, src)
	if diags.HasErrors() {
		return fmtDiagnostics(s, o, map[string]*hcl.File{stdinName: f}, diags)
	}
	switch {
	case o.check:
		if !bytes.Equal(src, out) {
			return &silentError{exitNotFormatted}
		}
	case o.diff:
		fmt.Fprint(s.Out, unifiedDiff(stdinName, src, out))
	default:
		s.Out.Write(out)
	}
	return nil
}

// formatSource formats HCL native syntax. It refuses text that does not parse: HCL's
// formatter works on tokens and would rewrite broken text into something harder to repair.
func formatSource(name string, src []byte) ([]byte, *hcl.File, hcl.Diagnostics) {
	f, diags := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, f, diags
	}
	return hclwrite.Format(src), f, nil
}

// formatFiles reads and formats every file; on any syntax error it reports every file's
// errors and fails, so that nothing is written.
func formatFiles(s Streams, o *fmtOptions, paths []string) ([]formattedFile, error) {
	var out []formattedFile
	var diags hcl.Diagnostics
	parsed := map[string]*hcl.File{}
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %s", p, osErrText(err))
		}
		formatted, f, d := formatSource(p, src)
		parsed[p] = f
		diags = append(diags, d...)
		out = append(out, formattedFile{path: p, src: src, out: formatted})
	}
	if diags.HasErrors() {
		return nil, fmtDiagnostics(s, o, parsed, diags)
	}
	return out, nil
}

func fmtDiagnostics(s Streams, o *fmtOptions, files map[string]*hcl.File, diags hcl.Diagnostics) error {
	schema.WriteDiagnostics(s.Err, files, diags, s.Width, colorOn(s.ErrTTY, &configFlags{noColor: o.noColor}))
	return &silentError{exitError}
}

// fmtPaths expands the arguments into the files to format, each once, in order. A named
// file must be one fmt formats; a directory contributes the ones it holds.
func fmtPaths(args []string, recursive bool) ([]string, error) {
	var paths []string
	seen := map[string]bool{}
	for _, a := range args {
		info, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("%s: no such file or directory", a)
		}
		found := []string{a}
		if info.IsDir() {
			if found, err = fmtDir(a, recursive); err != nil {
				return nil, err
			}
		} else if err := checkFmtFile(a); err != nil {
			return nil, err
		}
		for _, p := range found {
			if c := filepath.Clean(p); !seen[c] {
				seen[c] = true
				paths = append(paths, p)
			}
		}
	}
	return paths, nil
}

// checkFmtFile refuses a named file that is not HCL native syntax.
func checkFmtFile(name string) error {
	if isFmtFile(name) {
		return nil
	}
	if strings.HasSuffix(name, ".json") {
		return fmt.Errorf("%s: JSON files are not formatted (iotplan fmt formats .hcl and .vars files)", name)
	}
	return fmt.Errorf("%s: not a configuration or variable file (iotplan fmt formats .hcl and .vars files)", name)
}

func isFmtFile(name string) bool {
	for _, ext := range fmtExtensions {
		if strings.HasSuffix(name, ext) && len(filepath.Base(name)) > len(ext) {
			return true
		}
	}
	return false
}

// fmtDir lists the files to format in dir, sorted by name, and with recursive those of its
// subdirectories. Hidden entries (.git, .iotplan) and editor backups (~, #…#) are skipped.
func fmtDir(dir string, recursive bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading directory %s: %s", dir, osErrText(err))
	}
	var out []string
	for _, e := range entries {
		name, path := e.Name(), filepath.Join(dir, e.Name())
		if ignoredName(name) {
			continue
		}
		info, err := os.Stat(path) // follows a symbolic link to what it names
		switch {
		case err != nil:
			continue // a dangling link: nothing to format
		case info.IsDir() && recursive:
			sub, err := fmtDir(path, true)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case info.Mode().IsRegular() && isFmtFile(name):
			out = append(out, path)
		}
	}
	return out, nil
}

// osErrText is the reason of a file system error without the path, which the caller's
// message already names.
func osErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func ignoredName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "~") || strings.HasSuffix(name, "~") ||
		(strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#"))
}

// replaceFile replaces the file at path (or the file a symbolic link there names) with data:
// written to a temporary file beside it with the same permissions, then renamed over it, so
// an interruption leaves the old file or the new one, never a half-written one.
func replaceFile(path string, data []byte) error {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	info, err := os.Stat(target)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".fmt-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(info.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), target)
}
