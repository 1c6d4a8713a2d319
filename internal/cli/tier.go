package cli

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

// Environment variables that declare the hub's tier, for a hub whose connection string comes
// from IOTHUB_CONNECTION_STRING (a hub block can say tier and units itself).
const (
	envHubTier  = "IOTPLAN_HUB_TIER"
	envHubUnits = "IOTPLAN_HUB_UNITS"
)

// assumedTier is what iotplan sizes jobs and paces calls for when a real hub's tier is not
// declared: the smallest paid tier, so nothing is sent faster than any paid hub allows.
var assumedTier = tier.Tier{Name: "S1", Units: 1}

// declaredTier resolves the tier the user declared: -hub-tier/-hub-units, else
// IOTPLAN_HUB_TIER/IOTPLAN_HUB_UNITS, else the hub block's. ok is false when none is.
func declaredTier(f hubFlags, cfg *schema.Config) (t tier.Tier, ok bool, err error) {
	name, units, source := f.tier, f.units, "-hub-tier/-hub-units"
	if name == "" && units == 0 {
		name, source = strings.TrimSpace(os.Getenv(envHubTier)), envHubTier+"/"+envHubUnits
		if v := strings.TrimSpace(os.Getenv(envHubUnits)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return tier.Tier{}, false, fmt.Errorf("%s: %q is not a whole number of units", envHubUnits, v)
			}
			units = n
		}
	}
	if name == "" && units == 0 && cfg != nil && cfg.Hub != nil {
		name, units, source = cfg.Hub.Tier, cfg.Hub.Units, "the hub block"
	}
	if name == "" && units == 0 {
		return tier.Tier{}, false, nil
	}
	if name == "" {
		return tier.Tier{}, false, fmt.Errorf("%s: units need a tier (F1, S1, S2 or S3)", source)
	}
	t, err = tier.Parse(name, units)
	if err != nil {
		return tier.Tier{}, false, fmt.Errorf("%s: %w", source, err)
	}
	return t, true, nil
}
