package cli

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// versionInfo is what 'iotplan version' reports; its JSON form is
// {"iotplan_version": …, "go_version": …, "platform": …}, the names Terraform's
// 'terraform version -json' uses for the same facts (terraform_version, platform).
type versionInfo struct {
	Version   string `json:"iotplan_version"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// develVersion is what Go reports for a main module built from a working tree without
// version information (go run, go test), and what iotplan reports when it knows nothing
// better.
const develVersion = "(devel)"

// iotplanVersion is iotplan's version: Version when the build set it (-ldflags "-X
// github.com/iotplan/iotplan/internal/cli.Version=v1.2.3"), else the main module's version as
// Go recorded it (a tag or pseudo-version for 'go install …@v1.2.3' and for builds in a git
// checkout), else "(devel)".
func iotplanVersion() string {
	if Version != "" && Version != "dev" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return develVersion
}

func currentVersion() versionInfo {
	return versionInfo{
		Version:   iotplanVersion(),
		GoVersion: runtime.Version(),
		// GOOS_GOARCH, as Terraform spells its platform ("linux_amd64").
		Platform: runtime.GOOS + "_" + runtime.GOARCH,
	}
}

func newVersionCmd(s Streams) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version [-json]",
		Short: "Show iotplan's version, the Go version it was built with and the platform",
		Long: `Shows iotplan's version (set at build time with
-ldflags "-X github.com/iotplan/iotplan/internal/cli.Version=v1.2.3", else the
module version Go recorded, else "(devel)"), the Go version it was built with,
and the platform (GOOS_GOARCH).

-json writes {"iotplan_version": "…", "go_version": "…", "platform": "…"}.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := currentVersion()
			if asJSON {
				enc := json.NewEncoder(s.Out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			}
			_, err := fmt.Fprintf(s.Out, "iotplan %s\n%s on %s\n", v.Version, v.GoVersion, v.Platform)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `write {"iotplan_version", "go_version", "platform"} as JSON`)
	return cmd
}
