package schema

import "github.com/hashicorp/hcl/v2"

// Block and attribute schemas, one per block type. Later language versions
// add blocks (guard, rollout, converge) and meta-arguments (depends_on) here;
// until then HCL's own "Unsupported block type/argument" diagnostics reject
// them.

var fileSchema = &hcl.BodySchema{
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "hub"},
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "twin", LabelNames: []string{"name"}},
		{Type: "method", LabelNames: []string{"name"}},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "output", LabelNames: []string{"name"}},
	},
}

// moduleMeta are the module block's own arguments; every other attribute is an input
// variable of the module.
var moduleMeta = map[string]bool{"source": true, "for_each": true, "count": true}

var outputSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "value", Required: true},
		{Name: "description"},
		{Name: "sensitive"},
	},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

var hubSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "connection_string"},
		{Name: "tier"},
		{Name: "units"},
		{Name: "state"},
	},
}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
		{Name: "nullable"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var twinSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "target", Required: true},
		{Name: "desired"},
		{Name: "tags"},
		{Name: "max_execution"},
		{Name: "start_time"},
		{Name: "for_each"},
		{Name: "count"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "lifecycle"}, {Type: "rollout"}, {Type: "converge"}},
}

var rolloutSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "waves", Required: true},
		{Name: "max_failure_ratio"},
		{Name: "max_failures"},
		{Name: "pause"},
	},
}

var convergeSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "reported"},
		{Name: "timeout"},
		{Name: "min_ratio"},
	},
}

var lifecycleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "keep_on_removal"},
	},
}

var methodSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "target", Required: true},
		{Name: "method", Required: true},
		{Name: "payload"},
		{Name: "response_timeout"},
		{Name: "connect_timeout"},
		{Name: "max_execution"},
		{Name: "start_time"},
		{Name: "triggers"},
		{Name: "for_each"},
		{Name: "count"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "rollout"}},
}
