package cli

import (
	"fmt"

	"github.com/spf13/cobra"
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
			fmt.Fprintf(s.Out, "The configuration is valid: %d twin and %d method resources.\n", len(cfg.Twins), len(cfg.Methods))
			return nil
		},
	}
	cf.register(cmd.Flags())
	of.register(cmd.Flags(), false)
	return cmd
}
