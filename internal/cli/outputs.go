package cli

import (
	"encoding/json"

	"github.com/hashicorp/hcl/v2"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/schema"
)

// planOutputs evaluates the configuration's outputs with the plan's device counts and puts
// them in the plan, sensitive values left out. The diagnostics of that evaluation are
// returned for the caller to report.
func planOutputs(cfg *schema.Config, p *reconcile.Plan) hcl.Diagnostics {
	if cfg == nil || len(cfg.Outputs) == 0 {
		return nil
	}
	facts := map[string]schema.Facts{}
	for _, r := range p.Resources {
		facts[r.Addr] = schema.Facts{TargetedDevices: r.TargetedDevices, Devices: r.Devices}
	}
	diags := cfg.EvalOutputs(facts)
	p.Outputs = p.Outputs[:0]
	for _, o := range cfg.Outputs {
		out := reconcile.Output{Name: o.Name, Sensitive: o.Sensitive, Known: o.Value.IsWhollyKnown()}
		if out.Known && !o.Sensitive {
			b, err := ctyjson.Marshal(o.Value, o.Value.Type())
			if err == nil {
				out.Value = json.RawMessage(b)
			}
		}
		p.Outputs = append(p.Outputs, out)
	}
	return diags
}
