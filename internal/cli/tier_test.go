package cli

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/tier"
	"github.com/iotplan/iotplan/schema"
)

// TestHubTierResolution: -hub-tier/-hub-units win over IOTPLAN_HUB_TIER/IOTPLAN_HUB_UNITS,
// which win over the hub block; a real hub with none declared is assumed S1 × 1 unit (and the
// client paces to it), and bad values are errors naming where they came from.
func TestHubTierResolution(t *testing.T) {
	const cs = "HostName=contoso.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"
	t.Setenv(envConnectionString, cs)
	block := &schema.Config{Hub: &schema.Hub{Tier: "S2", Units: 4}}
	for _, tc := range []struct {
		name        string
		flags       hubFlags
		env         [2]string
		cfg         *schema.Config
		want        tier.Tier
		assumed     bool
		errContains string
	}{
		{"nothing declared", hubFlags{}, [2]string{}, nil, tier.Tier{Name: "S1", Units: 1}, true, ""},
		{"hub block", hubFlags{}, [2]string{}, block, tier.Tier{Name: "S2", Units: 4}, false, ""},
		{"env over block", hubFlags{}, [2]string{"s3", "2"}, block, tier.Tier{Name: "S3", Units: 2}, false, ""},
		{"flags over env", hubFlags{tier: "S1", units: 7}, [2]string{"S3", "2"}, block, tier.Tier{Name: "S1", Units: 7}, false, ""},
		{"bad env units", hubFlags{}, [2]string{"S1", "two"}, nil, tier.Tier{}, false, envHubUnits},
		{"units without tier", hubFlags{units: 3}, [2]string{}, nil, tier.Tier{}, false, "units need a tier"},
		{"unknown tier", hubFlags{tier: "B1"}, [2]string{}, nil, tier.Tier{}, false, `-hub-tier/-hub-units: unknown IoT Hub tier "B1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envHubTier, tc.env[0])
			t.Setenv(envHubUnits, tc.env[1])
			hs, err := openHub(context.Background(), tc.flags, tc.cfg, io.Discard)
			if tc.errContains != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errContains) {
					t.Fatalf("err %v, want it to contain %q", err, tc.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer hs.Close()
			if hs.tier != tc.want || hs.tierAssumed != tc.assumed || hs.client.Tier() != tc.want {
				t.Errorf("tier %v assumed %v (client paces to %v), want %v %v", hs.tier, hs.tierAssumed, hs.client.Tier(), tc.want, tc.assumed)
			}
			if o := hs.planOptions(); o.Tier != tc.want || o.TierAssumed != tc.assumed || o.Hub != "contoso.azure-devices.net" {
				t.Errorf("plan options %+v", o)
			}
		})
	}
}

// TestDevHubTier: -dev talks to a running 'iotplan dev' with the tier it runs with (from its
// endpoint file), unless one is declared.
func TestDevHubTier(t *testing.T) {
	h, _ := auditedHub(t, "")
	dir := t.TempDir()
	if err := writeEndpointFile(dir, endpointFile{ConnectionString: h.ServiceConnectionString(), CAFile: h.CAFile(), PID: os.Getpid(), Tier: "S2", Units: 3}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envHubTier, "")
	t.Setenv(envHubUnits, "")
	for _, tc := range []struct {
		flags hubFlags
		want  tier.Tier
	}{
		{hubFlags{dev: true, dataDir: dir}, tier.Tier{Name: "S2", Units: 3}},
		{hubFlags{dev: true, dataDir: dir, tier: "S3"}, tier.Tier{Name: "S3", Units: 1}},
	} {
		hs, err := openHub(context.Background(), tc.flags, nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if hs.tier != tc.want || hs.tierAssumed || hs.client.Tier() != tc.want {
			t.Errorf("%+v: tier %v (assumed %v)", tc.flags, hs.tier, hs.tierAssumed)
		}
		hs.Close()
	}
}
