package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// setupCompletion enables cobra's 'completion' command (bash, zsh, fish, powershell; see
// 'iotplan completion bash --help') and gives every command of the tree completions for its
// arguments and flags. newRootCmd calls it after adding every command: it reads the
// arguments each command takes from its usage line, so commands added later are covered
// without a table to keep in step.
//
// Cobra adds the completion command itself at Execute, after run has set the output
// streams, which the command captures when it is made (writeCLIDocs adds it to document it).
func setupCompletion(root *cobra.Command) {
	root.CompletionOptions.DisableDefaultCmd = false
	walkCommands(root, func(c *cobra.Command) {
		if c.ValidArgsFunction == nil && c.Runnable() {
			c.ValidArgsFunction = argCompletion(c)
		}
		registerFlagCompletions(c)
	})
}

func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, fn)
	}
}

// argCompletion completes a command's arguments from the placeholders of its usage line:
// PATH with configuration files (.hcl; .hcl and .vars for fmt) and directories, PLANFILE or
// FILE with any file, ADDR with the resource addresses of the configuration in the current
// directory; any other placeholder (ID, the query text) with nothing. A placeholder ending
// in "..." completes every argument from there on.
func argCompletion(c *cobra.Command) cobra.CompletionFunc {
	args := usageArgs(c.Use)
	configExts := []string{"hcl"}
	if c.Name() == "fmt" {
		configExts = fmtCompletionExts()
	}
	return func(_ *cobra.Command, given []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		placeholder, ok := placeholderAt(args, len(given))
		switch {
		case !ok:
			return nil, cobra.ShellCompDirectiveNoFileComp
		case strings.Contains(placeholder, "FILE"): // PLANFILE, FILE
			return nil, cobra.ShellCompDirectiveDefault
		case strings.Contains(placeholder, "PATH"):
			return configExts, cobra.ShellCompDirectiveFilterFileExt
		case strings.Contains(placeholder, "ADDR"):
			return configAddresses("."), cobra.ShellCompDirectiveNoFileComp
		}
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}

// fmtCompletionExts are fmtExtensions as the shells take them (without the dot).
func fmtCompletionExts() []string {
	out := make([]string, len(fmtExtensions))
	for i, e := range fmtExtensions {
		out[i] = strings.TrimPrefix(e, ".")
	}
	return out
}

// placeholderAt is the usage placeholder of argument i.
func placeholderAt(args []string, i int) (string, bool) {
	if i < len(args) {
		return args[i], true
	}
	if n := len(args); n > 0 && strings.Contains(args[n-1], "...") {
		return args[n-1], true
	}
	return "", false
}

// usageArgs returns the positional placeholders of a usage line ("show ID [-limit N] [PATH]"
// → ID, [PATH]): its words after the command name, a [group] or a 'quoted text' counting as
// one word, without the flags.
func usageArgs(use string) []string {
	var words []string
	var cur strings.Builder
	depth, quoted := 0, false
	for _, r := range use {
		switch {
		case r == '\'':
			quoted = !quoted
		case r == '[' && !quoted:
			depth++
		case r == ']' && !quoted:
			depth--
		case r == ' ' && depth == 0 && !quoted:
			words = append(words, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	words = append(words, cur.String())
	var out []string
	for _, w := range words[1:] {
		if w != "" && !strings.HasPrefix(strings.TrimLeft(w, "["), "-") {
			out = append(out, w)
		}
	}
	return out
}

// configAddresses lists the addresses (twin.NAME, method.NAME) of the resource blocks in the
// .hcl files of dir. It only parses, without evaluating variables or contacting a hub, so
// completion stays instant; the state may hold resources that have left the configuration,
// which are not offered.
func configAddresses(dir string) []cobra.Completion {
	names, _ := filepath.Glob(filepath.Join(dir, "*.hcl"))
	var out []cobra.Completion
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		f, _ := hclsyntax.ParseConfig(src, name, hcl.InitialPos)
		if f == nil {
			continue
		}
		body, ok := f.Body.(*hclsyntax.Body)
		if !ok {
			continue
		}
		for _, b := range body.Blocks {
			if (b.Type == "twin" || b.Type == "method") && len(b.Labels) == 1 {
				out = append(out, b.Type+"."+b.Labels[0])
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// flagCompletions complete flags by name wherever a command has them.
var flagCompletions = map[string]cobra.CompletionFunc{
	"data":          dirsOnly,
	"fleet":         filesWith("hcl"),
	"var-file":      filesWith("vars"),
	"hub-tier":      cobra.FixedCompletions(tierNames, cobra.ShellCompDirectiveNoFileComp),
	"tier":          cobra.FixedCompletions(tierNames, cobra.ShellCompDirectiveNoFileComp),
	"query-dialect": cobra.FixedCompletions([]cobra.Completion{"documented", "extended"}, cobra.ShellCompDirectiveNoFileComp),
}

// jobsFlagCompletions complete the flags of the 'iotplan jobs' commands, whose names are too
// common to complete the same way elsewhere.
var jobsFlagCompletions = map[string]cobra.CompletionFunc{
	"type":   cobra.FixedCompletions([]cobra.Completion{hubapi.JobTypeUpdateTwin, hubapi.JobTypeDeviceMethod}, cobra.ShellCompDirectiveNoFileComp),
	"status": cobra.FixedCompletions(jobStatuses, cobra.ShellCompDirectiveNoFileComp),
}

var tierNames = []cobra.Completion{"F1", "S1", "S2", "S3"}

func dirsOnly(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

func filesWith(exts ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return exts, cobra.ShellCompDirectiveFilterFileExt
	}
}

// registerFlagCompletions registers flagCompletions for the flags c defines, leaving any
// completion a command registered itself.
func registerFlagCompletions(c *cobra.Command) {
	register(c, flagCompletions)
	if c.HasParent() && c.Parent().Name() == "jobs" {
		register(c, jobsFlagCompletions)
	}
}

func register(c *cobra.Command, completions map[string]cobra.CompletionFunc) {
	for name, fn := range completions {
		if c.Flags().Lookup(name) == nil {
			continue
		}
		if _, done := c.GetFlagCompletionFunc(name); !done {
			_ = c.RegisterFlagCompletionFunc(name, fn) // cannot fail: the flag exists, unregistered
		}
	}
}
