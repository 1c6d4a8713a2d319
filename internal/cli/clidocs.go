package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

//go:generate go test . -run TestCLIDocs -update

// cliDocsRegenerate is how to bring docs/cli.md in step with the commands, as the file and
// TestCLIDocs tell the reader.
const cliDocsRegenerate = "go test ./internal/cli -run TestCLIDocs -update   (or: go generate ./internal/cli)"

// writeCLIDocs writes docs/cli.md, the command reference, from the command tree itself: each
// command's usage line, summary, description and flags with their defaults, so the reference
// cannot say something the commands do not (TestCLIDocs fails when the file differs).
func writeCLIDocs(w io.Writer) error {
	root := newRootCmd(Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard, Width: 80})
	root.InitDefaultCompletionCmd() // what Execute would add (setupCompletion)
	var b strings.Builder
	b.WriteString("# Command reference\n\n")
	fmt.Fprintf(&b, "<!-- Generated from the command definitions in internal/cli. Do not edit: run\n     %s\n     TestCLIDocs fails when this file and the commands differ. -->\n\n", cliDocsRegenerate)
	b.WriteString("Every iotplan command as `iotplan COMMAND --help` describes it. Flags shown with one dash may\n" +
		"also be written with two (`-out` or `--out`); the others take two. Exit codes: 0 success,\n" +
		"1 error, 2 changes present (`plan -detailed-exitcode`), 3 input not formatted (`fmt -check`).\n\n")
	var cmds []*cobra.Command
	for _, c := range allCommands(root) {
		if !c.Hidden && c.Name() != "help" {
			cmds = append(cmds, c)
		}
	}
	for _, c := range cmds {
		fmt.Fprintf(&b, "- [%s](#%s) — %s\n", c.CommandPath(), anchor(c.CommandPath()), c.Short)
	}
	for _, c := range cmds {
		writeCommandDoc(&b, c)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCommandDoc writes one command's section.
func writeCommandDoc(b *strings.Builder, c *cobra.Command) {
	fmt.Fprintf(b, "\n## %s\n\n%s\n\n", c.CommandPath(), c.Short)
	use := c.UseLine()
	if c.HasAvailableSubCommands() && c.Use == c.Name() {
		use = c.CommandPath() + " COMMAND" // a group of commands ('jobs', 'state')
	}
	fmt.Fprintf(b, "```text\n%s\n```\n", use)
	if long := strings.TrimSpace(c.Long); long != "" {
		fmt.Fprintf(b, "\n```text\n%s\n```\n", long)
	}
	if subs := availableSubcommands(c); len(subs) > 0 {
		b.WriteString("\nCommands:\n\n")
		for _, sub := range subs {
			fmt.Fprintf(b, "- [%s](#%s) — %s\n", sub.CommandPath(), anchor(sub.CommandPath()), sub.Short)
		}
	}
	writeFlagTable(b, c)
}

func availableSubcommands(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && sub.Name() != "help" {
			out = append(out, sub)
		}
	}
	return out
}

// writeFlagTable lists a command's own flags (help left out: every command has it).
func writeFlagTable(b *strings.Builder, c *cobra.Command) {
	var rows []string
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		spelling := flagSpelling(f)
		value, usage := pflag.UnquoteUsage(f)
		if value != "" {
			spelling += " " + flagValueName(c, f, value)
		}
		// A pipe ends a table cell even inside `code` (GitHub's tables): escaped, it shows.
		spelling = strings.ReplaceAll(spelling, "|", `\|`)
		rows = append(rows, fmt.Sprintf("| `%s` | %s | %s |", spelling, flagDefault(f), cell(usage)))
	})
	if len(rows) == 0 {
		return
	}
	b.WriteString("\n| Flag | Default | Description |\n|---|---|---|\n")
	b.WriteString(strings.Join(rows, "\n"))
	b.WriteString("\n")
}

// flagSpelling is a flag as people type it: one dash for the flags normalizeArgs accepts
// that way (longFlags), else two; its shorthand before it.
func flagSpelling(f *pflag.Flag) string {
	s := "--" + f.Name
	if longFlags[f.Name] {
		s = "-" + f.Name
	}
	if f.Shorthand != "" {
		s = "-" + f.Shorthand + ", " + s
	}
	return s
}

// flagValueName names a flag's value as the usage line does ("[-top N]" → N), else as the
// flag's usage text does (pflag's `name` convention), else by its type.
func flagValueName(c *cobra.Command, f *pflag.Flag, unquoted string) string {
	if unquoted != f.Value.Type() && !strings.HasPrefix(f.Value.Type(), unquoted) {
		return unquoted // `NAME` in the usage text
	}
	// The command's own usage line, else another's that names the flag (-data DIR in dev's).
	for _, cmd := range append([]*cobra.Command{c}, allCommands(c.Root())...) {
		if name := usageValueName(cmd.Use, f.Name); name != "" {
			return name
		}
	}
	switch f.Value.Type() {
	case "int", "uint", "float64":
		return "N"
	case "duration":
		return "D"
	}
	return "VALUE"
}

// usageValueName is the value a usage line gives flag ("[-top N]" → "N"), "" when none.
func usageValueName(use, flag string) string {
	for _, dashes := range []string{"-", "--"} {
		if _, after, ok := strings.Cut(use, "["+dashes+flag+" "); ok {
			if name, _, ok := strings.Cut(after, "]"); ok && !strings.ContainsAny(name, " [") {
				return name
			}
		}
	}
	return ""
}

func allCommands(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	walkCommands(root, func(c *cobra.Command) { out = append(out, c) })
	return out
}

// flagDefault is a flag's default, empty when it is the type's zero value.
func flagDefault(f *pflag.Flag) string {
	switch f.DefValue {
	case "", "false", "0", "[]", "0s":
		return ""
	}
	return "`" + f.DefValue + "`"
}

// cell makes text one Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.Join(strings.Fields(s), " "), "|", `\|`)
}

// anchor is the link target GitHub gives a "## TITLE" heading: lower case, spaces as
// hyphens, other punctuation dropped.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}
