package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/schema"
)

func newValidateCmd(s Streams) *cobra.Command {
	cf := &configFlags{validate: true}
	of := &outputFlags{}
	cmd := &cobra.Command{
		Use:   "validate [-json] [-compact-warnings] [-var name=value] [-var-file FILE] [PATH...]",
		Short: "Check the configuration without contacting a hub",
		Long: `Loads and checks the configuration without contacting a hub, and reports every
problem with its file, line and column. Like terraform validate, it needs no
variable values: a variable without one is unknown, and everything that does not
depend on it is checked in full. Values given (-var, -var-file, iotplan.vars,
*.auto.vars, IOTPLAN_VAR_name, defaults) are used and checked.

-json writes one JSON document instead (docs/json.md):
  {"format_version":"1.0","valid":…,"error_count":…,"warning_count":…,"diagnostics":[…]}
Exit codes: 0 valid, 1 invalid.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if of.json {
				return validateJSON(s, args, cf)
			}
			cfg, err := loadConfigReporting(args, cf, of.reporter(s, nil, cf))
			if err != nil {
				return err
			}
			fmt.Fprintln(s.Out, validText(cfg))
			return nil
		},
	}
	cf.register(cmd.Flags())
	of.register(cmd.Flags(), false)
	return cmd
}

// validText is validate's verdict: the resource instances known, or, when variables had no
// value, which ones (their values decide instances and targets, so no count is given).
func validText(cfg *schema.Config) string {
	var unset []string
	for _, v := range cfg.Variables {
		if !v.Value.IsWhollyKnown() {
			unset = append(unset, "var."+v.Name)
		}
	}
	if len(unset) > 0 {
		return fmt.Sprintf("Success! The configuration is valid, checked without values for %s.", strings.Join(unset, ", "))
	}
	return fmt.Sprintf("Success! The configuration is valid: %s and %s.",
		render.Plural(len(cfg.Twins), "twin resource", "twin resources"), render.Plural(len(cfg.Methods), "method resource", "method resources"))
}
