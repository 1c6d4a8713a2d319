package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/schema"
)

type showOptions struct {
	config configFlags // only -no-color
	json   bool
	format string
}

// newShowCmd is 'iotplan show': a saved plan for people, scripts or a pull request, read from
// the file alone, like 'terraform show PLANFILE'.
func newShowCmd(s Streams) *cobra.Command {
	o := &showOptions{}
	cmd := &cobra.Command{
		Use:   "show [-json | -format text|json|markdown] [-no-color] PLANFILE",
		Short: "Show a saved plan, for people, scripts or a pull request",
		Long: `Shows a plan saved with 'plan -out FILE', without contacting a hub: as plan
shows it (-format text, the default), as one JSON document for scripts (-json, or
-format json; docs/json.md), or as Markdown to post on a pull request
(-format markdown). Values from sensitive variables are shown as
"(sensitive value)" in each, though the file holds them. The text and Markdown
also name the sensitive variables that applying the plan needs again (a saved
plan does not hold their values).`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error { return runShow(s, o, args[0]) },
	}
	fs := cmd.Flags()
	fs.BoolVar(&o.json, "json", false, "write one JSON document (the same as -format json)")
	fs.StringVar(&o.format, "format", "text", "text, json or markdown")
	fs.BoolVar(&o.config.noColor, "no-color", false, "disable color in the output")
	return cmd
}

func runShow(s Streams, o *showOptions, path string) error {
	format := o.format
	switch {
	case o.json && format != "text" && format != "json":
		return flagErrorf("-json and -format %s: give one of them", format)
	case o.json:
		format = "json"
	case format != "text" && format != "json" && format != "markdown":
		return flagErrorf("-format %q: expected text, json or markdown", format)
	}
	p, err := reconcile.LoadPlan(path)
	if err != nil {
		return err // LoadPlan's errors name the file
	}
	switch format {
	case "json":
		return render.ShowJSON(s.Out, p, iotplanVersion())
	case "markdown":
		return writePlanMarkdown(s.Out, p)
	}
	fmt.Fprintf(s.Out, "%s\n\n", savedPlanText(p))
	return render.Plan(s.Out, p, render.Options{Color: colorOn(s.OutTTY, &o.config)})
}

// savedPlanText says where and when a saved plan was made.
func savedPlanText(p *reconcile.Plan) string {
	what := "Saved plan"
	if p.Destroy {
		what = "Saved destroy plan"
	}
	text := fmt.Sprintf("%s made %s for the state %q (serial %d) on the IoT hub %s.",
		what, reconcile.TimeText(p.CreatedAt), p.StateName, p.StateSerial, p.Hub)
	if need := applyTimeText(p); need != "" {
		text += " " + need
	}
	return text
}

// applyTimeText says which sensitive variables applying a saved plan needs again, or "".
func applyTimeText(p *reconcile.Plan) string {
	names := applyTimeVariables(p)
	if len(names) == 0 {
		return ""
	}
	vars, envs := make([]string, len(names)), make([]string, len(names))
	for i, n := range names {
		vars[i], envs[i] = "var."+n, schema.EnvVarPrefix+n
	}
	return fmt.Sprintf("Applying it needs the sensitive %s given again (%s, or %s next to the configuration): a saved plan does not hold the values of sensitive variables.",
		strings.Join(vars, ", "), strings.Join(envs, ", "), schema.AutoVarsFile)
}

// applyTimeVariables are the sensitive variables a saved plan was given values for, which it
// does not hold (schema.SavedVariable): 'apply PLANFILE' needs them again.
func applyTimeVariables(p *reconcile.Plan) []string {
	var names []string
	for _, v := range p.Variables {
		if v.Sensitive && v.Source != "default" {
			names = append(names, v.Name)
		}
	}
	return names
}

// writePlanMarkdown writes a saved plan as Markdown for a pull request comment: where it was
// made, its summary line, a table of the resources that change, and the full plan text in a
// collapsed section.
func writePlanMarkdown(w io.Writer, p *reconcile.Plan) error {
	var text bytes.Buffer
	if err := render.Plan(&text, p, render.Options{}); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### iotplan plan\n\n%s\n\n**%s**\n\n", markdownEscape(savedPlanText(p)), markdownEscape(render.SummaryLine(p)))
	if p.HasChanges() {
		b.WriteString("| | resource | action | devices | targeted |\n|---|---|---|--:|--:|\n")
		for _, r := range p.Resources {
			if r.Action == reconcile.NoOp {
				continue
			}
			action := string(r.Action)
			if m := r.MethodName(); m != "" {
				action += " " + markdownEscape(m)
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n", r.Action.Symbol(), r.Addr, action, render.Count(r.Devices), render.Count(r.TargetedDevices))
		}
		b.WriteString("\n")
	}
	// A fence longer than any run of backticks in the text, so that no value can close it.
	fence := strings.Repeat("`", max(3, longestRun(text.String(), '`')+1))
	fmt.Fprintf(&b, "<details><summary>Plan details</summary>\n\n%stext\n%s%s\n\n</details>\n", fence, text.String(), fence)
	_, err := io.WriteString(w, b.String())
	return err
}

// markdownEscape keeps text (a method name, a hub name) from being read as Markdown or HTML.
var markdownEscape = strings.NewReplacer(`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "|", `\|`, "<", "&lt;", ">", "&gt;", "[", `\[`).Replace

func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}
