package reconcile

import (
	"errors"
	"fmt"

	"github.com/iotplan/iotplan/schema"
)

// ErrTargetMatchesNothing: a -target address selects no resource of the configuration or
// the state (almost always a typo).
var ErrTargetMatchesNothing = errors.New("the -target address selects no resource of the configuration or the state")

// live is what a plan reconciles: the configuration's resources that opts.Targets select
// (all without targets), or none for a destroy.
func live(cfg *Config, opts PlanOptions) *Config {
	if opts.Destroy {
		return &Config{}
	}
	if len(opts.Targets) == 0 {
		return cfg
	}
	out := &Config{}
	for _, t := range cfg.Twins {
		if schema.SelectsAny(opts.Targets, t.Addr) {
			out.Twins = append(out.Twins, t)
		}
	}
	for _, m := range cfg.Methods {
		if schema.SelectsAny(opts.Targets, m.Addr) {
			out.Methods = append(out.Methods, m)
		}
	}
	return out
}

// checkTargets refuses a target that selects nothing in the configuration or the state.
func checkTargets(cfg *Config, opts PlanOptions) error {
	for _, target := range opts.Targets {
		if err := schema.ParseTarget(target); err != nil {
			return err
		}
		addrs := configAddrs(cfg)
		if opts.Prior != nil {
			for _, r := range opts.Prior.Resources {
				addrs = append(addrs, r.Addr)
			}
		}
		found := false
		var selectors []string
		for _, a := range addrs {
			found = found || schema.Selects(target, a)
			selectors = append(selectors, schema.Selectors(a)...)
		}
		if !found {
			hint := ""
			if s := schema.Suggestion(target, selectors); s != "" {
				hint = fmt.Sprintf(" (did you mean %s?)", s)
			}
			return fmt.Errorf("%w: %s%s", ErrTargetMatchesNothing, target, hint)
		}
	}
	return nil
}

func configAddrs(cfg *Config) []string {
	var out []string
	for _, t := range cfg.Twins {
		out = append(out, t.Addr)
	}
	for _, m := range cfg.Methods {
		out = append(out, m.Addr)
	}
	return out
}
