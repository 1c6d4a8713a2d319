package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newValidateCmd(s Streams) *cobra.Command {
	cf := &configFlags{}
	cmd := &cobra.Command{
		Use:   "validate [PATH...]",
		Short: "Check the configuration without contacting a hub",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := loadConfig(s, args, cf)
			if err != nil {
				return err
			}
			fmt.Fprintf(s.Out, "The configuration is valid: %d twin and %d method resources.\n", len(cfg.Twins), len(cfg.Methods))
			return nil
		},
	}
	cf.register(cmd.Flags())
	return cmd
}
