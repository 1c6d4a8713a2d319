package reconcile

import "github.com/iotplan/iotplan/schema"

// FromSchema converts a loaded configuration into what the planner reconciles.
func FromSchema(c *schema.Config) *Config {
	out := &Config{}
	if c == nil {
		return out
	}
	for _, t := range c.Twins {
		out.Twins = append(out.Twins, Twin{Addr: t.Addr, Target: t.Target, Desired: t.Desired, Tags: t.Tags,
			MaxExecution: t.MaxExecution, StartTime: t.StartTime,
			Sensitive: t.Sensitive, TargetSensitive: t.TargetSensitive, KeepOnRemoval: t.KeepOnRemoval,
			Rollout: t.Rollout, Converge: t.Converge})
	}
	for _, m := range c.Methods {
		out.Methods = append(out.Methods, Method{
			Addr: m.Addr, Target: m.Target, Method: m.Method, Payload: m.Payload,
			ResponseTimeout: m.ResponseTimeout, ConnectTimeout: m.ConnectTimeout,
			MaxExecution: m.MaxExecution, StartTime: m.StartTime,
			PayloadSensitive: m.PayloadSensitive, TargetSensitive: m.TargetSensitive,
			Triggers: m.Triggers, TriggersSet: m.TriggersSet, Rollout: m.Rollout,
		})
	}
	return out
}
