package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
)

// Fleet is a parsed fleet file: the simulated devices of a local hub and their behaviours.
type Fleet struct {
	Filename string
	Source   []byte   // kept so the hub can remember the fleet across restarts
	Groups   []*Group // in file order; a device block is a group of one
}

// Size is the number of devices the fleet defines.
func (f *Fleet) Size() int {
	n := 0
	for _, g := range f.Groups {
		n += g.Count
	}
	return n
}

// Modes of a group: in-process devices are a few hundred bytes each inside the hub (no
// socket); MQTT-mode devices are real MQTT clients over TLS on loopback, connected to the
// hub's MQTT endpoint. Both run the same behaviour definitions.
const (
	ModeInProcess = "in_process"
	ModeMQTT      = "mqtt"
)

// DefaultEchoDelay is how long a device waits before echoing desired changes into reported
// properties when the fleet file does not say.
const DefaultEchoDelay = 500 * time.Millisecond

// Group is a set of devices with one behaviour: a `group` block, or a `device` block (Single).
type Group struct {
	Name            string // group label, or the device id of a device block
	Single          bool
	Count           int
	Mode            string
	Offline         bool    // device blocks: never connects
	OfflineFraction float64 // groups: this fraction of devices never connects
	EchoDelay       time.Duration
	Echo            bool   // false: the devices never report their desired properties back
	Churn           *Churn // nil: connected devices stay connected
	Methods         []*Method
	DeclRange       hcl.Range

	ids                     []string
	tags, desired, reported *valueExpr
}

// ID returns the id of the group's i-th device.
func (g *Group) ID(i int) string { return g.ids[i] }

// Seed evaluates the group's i-th device for the registry.
func (g *Group) Seed(i int) (registry.SeedDevice, error) {
	s := registry.SeedDevice{DeviceID: g.ids[i]}
	var err error
	if s.Tags, err = g.tags.eval(i, g.ids[i]); err != nil {
		return s, err
	}
	if s.Desired, err = g.desired.eval(i, g.ids[i]); err != nil {
		return s, err
	}
	s.Reported, err = g.reported.eval(i, g.ids[i])
	return s, err
}

// Method is how a group's devices answer one direct method.
type Method struct {
	Name            string
	Status          int
	Payload         json.RawMessage
	LatencyMin      time.Duration
	LatencyMax      time.Duration
	FailureFraction float64 // this fraction of the group's devices always fails the method
	FailureStatus   int
	FailurePayload  json.RawMessage
	Respond         bool // false: the device receives the call and never answers (→ 504101)
	DeclRange       hcl.Range
}

// Churn is a group's connect/disconnect behaviour: each churning device disconnects once per
// interval (uniform in [IntervalMin, IntervalMax]; the first one at a random point of the
// first interval, so a group does not disconnect in one wave), stays away for a downtime
// (uniform in [DowntimeMin, DowntimeMax]) and reconnects. The group's disconnect rate is
// about count·Fraction/interval per second.
type Churn struct {
	IntervalMin, IntervalMax time.Duration
	DowntimeMin, DowntimeMax time.Duration
	Fraction                 float64 // this fraction of the group's online devices churns
	DeclRange                hcl.Range
}

// Interval is how long deviceID stays connected before its cycle-th disconnect (cycle ≥ 1),
// reproducible.
func (c *Churn) Interval(deviceID string, cycle uint64) time.Duration {
	return uniform(c.IntervalMin, c.IntervalMax, "churn/interval", deviceID, cycle)
}

// Downtime is how long deviceID stays disconnected after its cycle-th disconnect, reproducible.
func (c *Churn) Downtime(deviceID string, cycle uint64) time.Duration {
	return uniform(c.DowntimeMin, c.DowntimeMax, "churn/downtime", deviceID, cycle)
}

// ChurningDevices returns, for each device of g, whether it churns (nil = none). Offline
// devices never connect, so they never churn either.
func (g *Group) ChurningDevices() []bool {
	if g.Churn == nil {
		return nil
	}
	return pickFraction(g.ids, g.Churn.Fraction, "churn")
}

// valueExpr is an object-valued attribute (tags, desired, reported) that may use the
// variables `index` and `id`. A constant one is evaluated once.
type valueExpr struct {
	expr     hcl.Expression
	constant map[string]any
	isConst  bool
	fields   []objectField // non-nil: an object constructor evaluated field by field
	leaves   interner
}

func (v *valueExpr) eval(i int, id string) (map[string]any, error) {
	if v == nil {
		return nil, nil
	}
	if v.isConst {
		return v.constant, nil
	}
	if v.fields != nil {
		m, diags := v.evalFields(deviceCtx(i, id))
		if diags.HasErrors() {
			return nil, diags
		}
		return m, nil
	}
	m, diags := evalObjectWith(v.expr, deviceCtx(i, id), &v.leaves)
	if diags.HasErrors() {
		return nil, diags
	}
	return m, nil
}

// interner shares equal scalar leaves (strings, numbers, bools) between the devices of a
// group: the registry keeps every device's values, and a fleet's values repeat ("41", 3,
// "1.4.2"), so a million twins hold a few shared boxes instead of a million copies (about
// 100 B per device with the default fleet's shape). It stops growing at maxInterned values,
// so unique values (ids, serials) cost a lookup, not memory.
type interner struct {
	mu sync.Mutex
	m  map[any]any
}

const maxInterned = 4096

func (in *interner) intern(v any) any {
	if in == nil {
		return v
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.m[v]; ok {
		return c
	}
	if in.m == nil {
		in.m = make(map[any]any)
	}
	if len(in.m) < maxInterned {
		in.m[v] = v
	}
	return v
}

var functions = map[string]function.Function{
	"abs": stdlib.AbsoluteFunc, "ceil": stdlib.CeilFunc, "concat": stdlib.ConcatFunc,
	"element": stdlib.ElementFunc, "floor": stdlib.FloorFunc, "format": stdlib.FormatFunc,
	"join": stdlib.JoinFunc, "length": stdlib.LengthFunc, "lookup": stdlib.LookupFunc,
	"lower": stdlib.LowerFunc, "max": stdlib.MaxFunc, "merge": stdlib.MergeFunc,
	"min": stdlib.MinFunc, "upper": stdlib.UpperFunc,
}

// staticCtx evaluates attributes that are the same for every device of a group.
var staticCtx = &hcl.EvalContext{Functions: functions}

func deviceCtx(i int, id string) *hcl.EvalContext {
	vars := map[string]cty.Value{"index": cty.NumberIntVal(int64(i))}
	if id != "" {
		vars["id"] = cty.StringVal(id)
	}
	return &hcl.EvalContext{Variables: vars, Functions: functions}
}

var fileSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "device", LabelNames: []string{"id"}},
	{Type: "group", LabelNames: []string{"name"}},
}}

var deviceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "tags"}, {Name: "desired"}, {Name: "reported"},
		{Name: "offline"}, {Name: "reported_echo_delay"}, {Name: "mode"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "method", LabelNames: []string{"name"}}, {Type: "churn"}},
}

var groupSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "count", Required: true}, {Name: "id", Required: true},
		{Name: "tags"}, {Name: "desired"}, {Name: "reported"},
		{Name: "offline_fraction"}, {Name: "reported_echo_delay"}, {Name: "mode"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "method", LabelNames: []string{"name"}}, {Type: "churn"}},
}

var churnSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "interval", Required: true}, {Name: "downtime"}, {Name: "fraction"},
}}

var methodSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "status"}, {Name: "payload"}, {Name: "latency"}, {Name: "respond"},
	{Name: "failure_fraction"}, {Name: "failure_status"}, {Name: "failure_payload"},
}}

// Limits that keep a fleet file from exhausting the hub.
const (
	MaxGroupCount = 10_000_000
	// MaxMQTTDevices bounds a fleet's mqtt-mode devices: each is a TLS connection and a few
	// goroutines in the hub's process.
	MaxMQTTDevices      = 20_000
	maxMethodsPerDevice = 64
)

// LoadFleet reads and parses a fleet file.
func LoadFleet(path string) (*Fleet, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read fleet file",
			Detail: fmt.Sprintf("The fleet file %s could not be read: %v.", path, err)}}
	}
	return ParseFleet(path, src)
}

// ParseFleet parses fleet source. Diagnostics carry file:line:col subjects; render them with
// hcl.NewDiagnosticTextWriter and map[string]*hcl.File{filename: {Bytes: src}}.
func ParseFleet(filename string, src []byte) (*Fleet, hcl.Diagnostics) {
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, diags
	}
	content, more := file.Body.Content(fileSchema)
	diags = append(diags, more...)
	f := &Fleet{Filename: filename, Source: src}
	total, mqttTotal := 0, 0
	var groups []*Group
	var ranges []hcl.Range
	for _, b := range content.Blocks {
		var g *Group
		var gd hcl.Diagnostics
		if b.Type == "device" {
			g, gd = decodeDevice(b)
		} else {
			g, gd = decodeGroup(b)
		}
		diags = append(diags, gd...)
		if g == nil {
			continue
		}
		total += g.Count
		if g.Mode == ModeMQTT {
			if mqttTotal += g.Count; mqttTotal > MaxMQTTDevices {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too many MQTT devices",
					Detail:  fmt.Sprintf(`Each device in mode "mqtt" is a real MQTT connection inside the hub's process; a fleet may have at most %d (use "in_process" for larger fleets).`, MaxMQTTDevices),
					Subject: b.DefRange.Ptr()})
				return nil, diags
			}
		}
		if total > MaxGroupCount {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Fleet too large",
				Detail: fmt.Sprintf("The fleet defines more than %d devices.", MaxGroupCount), Subject: b.DefRange.Ptr()})
			return nil, diags
		}
		groups, ranges = append(groups, g), append(ranges, b.DefRange)
	}
	// Duplicate ids, once the fleet's size is known: the map is sized once and holds a group
	// index per id (a million ids rehashed a growing map of ranges for seconds).
	seen := make(map[string]int32, total) // device id → index of the group that defined it
	for gi, g := range groups {
		dup := false
		for _, id := range g.ids {
			if first, ok := seen[id]; ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate device id",
					Detail:  fmt.Sprintf("The device id %q is already defined at %s.", id, ranges[first]),
					Subject: ranges[gi].Ptr()})
				dup = true
				break
			}
			seen[id] = int32(gi)
		}
		if !dup {
			f.Groups = append(f.Groups, g)
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return f, diags
}

func decodeDevice(b *hcl.Block) (*Group, hcl.Diagnostics) {
	content, diags := b.Body.Content(deviceSchema)
	id := b.Labels[0]
	g := &Group{Name: id, Single: true, Count: 1, ids: []string{id}, DeclRange: b.DefRange}
	if err := registry.ValidateDeviceID(id); err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid device id",
			Detail: errText(err), Subject: b.LabelRanges[0].Ptr()})
	}
	if a := content.Attributes["offline"]; a != nil {
		v, d := staticValue(a, cty.Bool)
		diags = append(diags, d...)
		if !d.HasErrors() {
			g.Offline = v.True()
		}
	}
	diags = append(diags, decodeCommon(g, content)...)
	if diags.HasErrors() {
		return nil, diags
	}
	return g, diags
}

func decodeGroup(b *hcl.Block) (*Group, hcl.Diagnostics) {
	content, diags := b.Body.Content(groupSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	g := &Group{Name: b.Labels[0], DeclRange: b.DefRange}
	a := content.Attributes["count"]
	n, d := staticInt(a, 1, MaxGroupCount)
	diags = append(diags, d...)
	g.Count = n
	if a := content.Attributes["offline_fraction"]; a != nil {
		g.OfflineFraction, d = staticFraction(a)
		diags = append(diags, d...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	diags = append(diags, decodeIDs(g, content.Attributes["id"])...)
	diags = append(diags, decodeCommon(g, content)...)
	if diags.HasErrors() {
		return nil, diags
	}
	return g, diags
}

// decodeIDs expands a group's `id`: a constant printf pattern over the index ("door-%05d"),
// or an expression using `index` (format("door-%05d", index + 240)).
func decodeIDs(g *Group, a *hcl.Attribute) hcl.Diagnostics {
	g.ids = make([]string, g.Count)
	constant := len(a.Expr.Variables()) == 0
	var pattern string
	if constant {
		v, diags := staticValue(a, cty.String)
		if diags.HasErrors() {
			return diags
		}
		pattern = v.AsString()
		probe := fmt.Sprintf(pattern, 0)
		if strings.Contains(probe, "%!") || (probe == pattern && g.Count > 1) {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid id pattern",
				Detail:  fmt.Sprintf("The id %q must contain exactly one integer verb such as %%05d, replaced by the device's index 0..%d (or be an expression using index).", pattern, g.Count-1),
				Subject: a.Expr.Range().Ptr()}}
		}
	}
	for i := range g.ids {
		var id string
		if constant {
			id = fmt.Sprintf(pattern, i)
		} else {
			v, diags := a.Expr.Value(deviceCtx(i, ""))
			if !diags.HasErrors() {
				v, diags = convertValue(v, cty.String, a.Expr.Range())
			}
			if diags.HasErrors() {
				return diags
			}
			id = v.AsString()
		}
		if err := registry.ValidateDeviceID(id); err != nil {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid device id",
				Detail: fmt.Sprintf("Device %d of group %q: %s", i, g.Name, errText(err)), Subject: a.Expr.Range().Ptr()}}
		}
		g.ids[i] = id
	}
	return nil
}

// decodeCommon decodes what device and group blocks share.
func decodeCommon(g *Group, content *hcl.BodyContent) hcl.Diagnostics {
	var diags hcl.Diagnostics
	g.Mode = ModeInProcess
	if a := content.Attributes["mode"]; a != nil {
		v, d := staticValue(a, cty.String)
		diags = append(diags, d...)
		if !d.HasErrors() {
			switch mode := v.AsString(); mode {
			case ModeInProcess:
			case ModeMQTT:
				g.Mode = ModeMQTT
			default:
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid mode",
					Detail: fmt.Sprintf("mode must be %q or %q; got %q.", ModeInProcess, ModeMQTT, mode), Subject: a.Expr.Range().Ptr()})
			}
		}
	}
	g.Echo, g.EchoDelay = true, DefaultEchoDelay
	if a := content.Attributes["reported_echo_delay"]; a != nil {
		v, d := staticValue(a, cty.String)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if s := v.AsString(); s == "off" {
				g.Echo = false
			} else if dur, err := time.ParseDuration(s); err != nil || dur < 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid reported_echo_delay",
					Detail: fmt.Sprintf(`reported_echo_delay must be a duration such as "500ms" or "2s", or "off"; got %q.`, s), Subject: a.Expr.Range().Ptr()})
			} else {
				g.EchoDelay = dur
			}
		}
	}
	for _, name := range []string{"tags", "desired", "reported"} {
		a := content.Attributes[name]
		if a == nil {
			continue
		}
		ve, d := decodeValueExpr(g, a)
		diags = append(diags, d...)
		switch name {
		case "tags":
			g.tags = ve
		case "desired":
			g.desired = ve
		case "reported":
			g.reported = ve
		}
	}
	seen := map[string]hcl.Range{}
	for _, mb := range content.Blocks {
		if mb.Type == "churn" {
			if g.Churn != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate churn block",
					Detail: fmt.Sprintf("A churn block is already defined at %s.", g.Churn.DeclRange), Subject: mb.DefRange.Ptr()})
				continue
			}
			c, d := decodeChurn(mb)
			diags = append(diags, d...)
			if c != nil {
				g.Churn = c
			}
			continue
		}
		m, d := decodeMethod(mb)
		diags = append(diags, d...)
		if m == nil {
			continue
		}
		if first, ok := seen[m.Name]; ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate method block",
				Detail: fmt.Sprintf("The method %q is already defined at %s.", m.Name, first), Subject: mb.LabelRanges[0].Ptr()})
			continue
		}
		seen[m.Name] = mb.DefRange
		g.Methods = append(g.Methods, m)
	}
	if len(g.Methods) > maxMethodsPerDevice {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too many methods",
			Detail: fmt.Sprintf("A device may define at most %d methods.", maxMethodsPerDevice), Subject: g.DeclRange.Ptr()})
	}
	return diags
}

// decodeValueExpr checks an object-valued attribute on the first and last device, and
// evaluates it once when it does not depend on the device.
func decodeValueExpr(g *Group, a *hcl.Attribute) (*valueExpr, hcl.Diagnostics) {
	ve := &valueExpr{expr: a.Expr}
	for _, i := range []int{0, g.Count - 1} {
		m, diags := evalObject(a.Expr, deviceCtx(i, g.ids[i]))
		if diags.HasErrors() {
			return nil, diags
		}
		if len(a.Expr.Variables()) == 0 {
			ve.constant, ve.isConst = m, true
			break
		}
	}
	if !ve.isConst {
		ve.fields = splitObject(a.Expr)
	}
	return ve, nil
}

// objectField is one attribute of an object constructor `{ k = v, ... }` whose value is
// either the same for every device (evaluated once) or depends on index/id.
type objectField struct {
	key      string
	constant any
	expr     hcl.Expression // nil: constant
}

// splitObject splits an object constructor with constant keys into its fields, so that a
// group's per-device evaluation only runs the attributes that use index or id (seeding a
// million devices spends most of its time in HCL evaluation otherwise). It returns nil for
// any other expression, which is then evaluated whole.
func splitObject(expr hcl.Expression) []objectField {
	oc, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	fields := make([]objectField, 0, len(oc.Items))
	seen := map[string]bool{}
	for _, item := range oc.Items {
		if len(item.KeyExpr.Variables()) != 0 {
			return nil
		}
		kv, diags := item.KeyExpr.Value(staticCtx)
		if diags.HasErrors() || kv.IsNull() || !kv.IsKnown() {
			return nil
		}
		kv, err := convert.Convert(kv, cty.String)
		if err != nil || seen[kv.AsString()] {
			return nil
		}
		f := objectField{key: kv.AsString()}
		seen[f.key] = true
		if len(item.ValueExpr.Variables()) == 0 {
			v, diags := item.ValueExpr.Value(staticCtx)
			if diags.HasErrors() {
				return nil
			}
			if f.constant, err = ctyToGo(v, nil); err != nil {
				return nil
			}
		} else {
			f.expr = item.ValueExpr
		}
		fields = append(fields, f)
	}
	return fields
}

func (v *valueExpr) evalFields(ctx *hcl.EvalContext) (map[string]any, hcl.Diagnostics) {
	m := make(map[string]any, len(v.fields))
	for _, f := range v.fields {
		if f.expr == nil {
			m[f.key] = f.constant
			continue
		}
		val, diags := f.expr.Value(ctx)
		if diags.HasErrors() {
			return nil, diags
		}
		g, err := ctyToGo(val, &v.leaves)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value", Detail: err.Error(), Subject: f.expr.Range().Ptr()}}
		}
		m[f.key] = g
	}
	return m, nil
}

func evalObject(expr hcl.Expression, ctx *hcl.EvalContext) (map[string]any, hcl.Diagnostics) {
	return evalObjectWith(expr, ctx, nil)
}

func evalObjectWith(expr hcl.Expression, ctx *hcl.EvalContext, in *interner) (map[string]any, hcl.Diagnostics) {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return nil, diags
	}
	if v.IsNull() {
		return nil, nil
	}
	if t := v.Type(); !t.IsObjectType() && !t.IsMapType() {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Object required",
			Detail:  fmt.Sprintf("This value must be an object such as { building = \"43\" }; got %s.", t.FriendlyName()),
			Subject: expr.Range().Ptr()}}
	}
	var m map[string]any
	if err := toGo(v, &m, in); err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value", Detail: err.Error(), Subject: expr.Range().Ptr()}}
	}
	return m, nil
}

// toGo converts a cty value to the JSON data model (map[string]any, []any, string, float64,
// bool, nil) directly: it runs once per device and attribute when seeding a fleet.
func toGo(v cty.Value, out *map[string]any, in *interner) error {
	g, err := ctyToGo(v, in)
	if err != nil {
		return err
	}
	*out, _ = g.(map[string]any)
	return nil
}

func ctyToGo(v cty.Value, in *interner) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	if !v.IsKnown() {
		return nil, errors.New("the value is not known")
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return in.intern(v.AsString()), nil
	case t == cty.Bool:
		return v.True(), nil
	case t == cty.Number:
		f, _ := v.AsBigFloat().Float64()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, errors.New("the number is not finite, which JSON cannot represent")
		}
		return in.intern(f), nil
	case t.IsObjectType() || t.IsMapType():
		m := make(map[string]any, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			g, err := ctyToGo(e, in)
			if err != nil {
				return nil, err
			}
			key, _ := in.intern(k.AsString()).(string)
			m[key] = g
		}
		return m, nil
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		a := make([]any, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, e := it.Element()
			g, err := ctyToGo(e, in)
			if err != nil {
				return nil, err
			}
			a = append(a, g)
		}
		return a, nil
	}
	return nil, fmt.Errorf("a %s value cannot be stored in a twin", t.FriendlyName())
}

func toJSON(a *hcl.Attribute) (json.RawMessage, hcl.Diagnostics) {
	v, diags := a.Expr.Value(staticCtx)
	if diags.HasErrors() {
		return nil, diags
	}
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid payload", Detail: err.Error(), Subject: a.Expr.Range().Ptr()}}
	}
	return b, nil
}

func decodeMethod(b *hcl.Block) (*Method, hcl.Diagnostics) {
	content, diags := b.Body.Content(methodSchema)
	m := &Method{Name: b.Labels[0], Status: 200, Payload: json.RawMessage("null"), FailureStatus: 500,
		FailurePayload: json.RawMessage(`{"error":"simulated failure"}`), Respond: true, DeclRange: b.DefRange}
	if m.Name == "" || strings.ContainsAny(m.Name, "/#+ \t") {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid method name",
			Detail: "A method name must be non-empty and may not contain '/', '#', '+' or spaces (it travels in an MQTT topic).", Subject: b.LabelRanges[0].Ptr()})
	}
	if a := content.Attributes["status"]; a != nil {
		n, d := staticInt(a, 100, 999)
		diags = append(diags, d...)
		m.Status = n
	}
	if a := content.Attributes["failure_status"]; a != nil {
		n, d := staticInt(a, 100, 999)
		diags = append(diags, d...)
		m.FailureStatus = n
	}
	if a := content.Attributes["payload"]; a != nil {
		p, d := toJSON(a)
		diags = append(diags, d...)
		m.Payload = p
	}
	if a := content.Attributes["failure_payload"]; a != nil {
		p, d := toJSON(a)
		diags = append(diags, d...)
		m.FailurePayload = p
	}
	if a := content.Attributes["failure_fraction"]; a != nil {
		f, d := staticFraction(a)
		diags = append(diags, d...)
		m.FailureFraction = f
	}
	if a := content.Attributes["respond"]; a != nil {
		v, d := staticValue(a, cty.Bool)
		diags = append(diags, d...)
		if !d.HasErrors() {
			m.Respond = v.True()
		}
	}
	if a := content.Attributes["latency"]; a != nil {
		v, d := staticValue(a, cty.String)
		diags = append(diags, d...)
		if !d.HasErrors() {
			lo, hi, err := parseLatency(v.AsString())
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid latency",
					Detail: err.Error(), Subject: a.Expr.Range().Ptr()})
			}
			m.LatencyMin, m.LatencyMax = lo, hi
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return m, diags
}

// parseLatency reads "50ms" or a uniform range "20ms..80ms".
func parseLatency(s string) (lo, hi time.Duration, err error) {
	lo, hi, ok := parseRange(s, 0, 10*time.Minute)
	if !ok {
		return 0, 0, fmt.Errorf(`latency must be a duration such as "50ms", or a range such as "20ms..80ms" (at most 10m); got %q`, s)
	}
	return lo, hi, nil
}

// parseRange reads a duration "50ms" or a uniform range "20ms..80ms" within [min, max].
func parseRange(s string, min, max time.Duration) (lo, hi time.Duration, ok bool) {
	a, b, isRange := strings.Cut(s, "..")
	lo, err := time.ParseDuration(strings.TrimSpace(a))
	hi = lo
	if err == nil && isRange {
		hi, err = time.ParseDuration(strings.TrimSpace(b))
	}
	if err != nil || lo < min || hi < lo || hi > max {
		return 0, 0, false
	}
	return lo, hi, true
}

// Churn limits: a reconnect costs a TLS handshake in mqtt mode and a registry write in both.
const (
	minChurnInterval = 100 * time.Millisecond
	maxChurnInterval = 24 * time.Hour
	maxChurnDowntime = time.Hour
	defaultDowntime  = time.Second
)

func decodeChurn(b *hcl.Block) (*Churn, hcl.Diagnostics) {
	content, diags := b.Body.Content(churnSchema)
	if diags.HasErrors() {
		return nil, diags
	}
	c := &Churn{DowntimeMin: defaultDowntime, DowntimeMax: defaultDowntime, Fraction: 1, DeclRange: b.DefRange}
	a := content.Attributes["interval"]
	v, d := staticValue(a, cty.String)
	diags = append(diags, d...)
	if !d.HasErrors() {
		var ok bool
		if c.IntervalMin, c.IntervalMax, ok = parseRange(v.AsString(), minChurnInterval, maxChurnInterval); !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid churn interval",
				Detail:  fmt.Sprintf(`interval is how long a device stays connected between disconnects: a duration such as "5m", or a range such as "1m..10m", from %v to %v; got %q.`, minChurnInterval, maxChurnInterval, v.AsString()),
				Subject: a.Expr.Range().Ptr()})
		}
	}
	if a := content.Attributes["downtime"]; a != nil {
		v, d := staticValue(a, cty.String)
		diags = append(diags, d...)
		if !d.HasErrors() {
			var ok bool
			if c.DowntimeMin, c.DowntimeMax, ok = parseRange(v.AsString(), 0, maxChurnDowntime); !ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid churn downtime",
					Detail:  fmt.Sprintf(`downtime is how long a device stays disconnected: a duration such as "2s", or a range such as "1s..5s", at most %v; got %q.`, maxChurnDowntime, v.AsString()),
					Subject: a.Expr.Range().Ptr()})
			}
		}
	}
	if a := content.Attributes["fraction"]; a != nil {
		f, d := staticFraction(a)
		diags = append(diags, d...)
		c.Fraction = f
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return c, diags
}

func staticValue(a *hcl.Attribute, want cty.Type) (cty.Value, hcl.Diagnostics) {
	v, diags := a.Expr.Value(staticCtx)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	return convertValue(v, want, a.Expr.Range())
}

func convertValue(v cty.Value, want cty.Type, rng hcl.Range) (cty.Value, hcl.Diagnostics) {
	cv, err := convert.Convert(v, want)
	if err != nil || cv.IsNull() {
		detail := fmt.Sprintf("A %s is required here.", want.FriendlyName())
		if err != nil {
			detail = fmt.Sprintf("A %s is required here: %v.", want.FriendlyName(), err)
		}
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
			Detail: detail, Subject: rng.Ptr()}}
	}
	return cv, nil
}

func staticInt(a *hcl.Attribute, lo, hi int) (int, hcl.Diagnostics) {
	v, diags := staticValue(a, cty.Number)
	if diags.HasErrors() {
		return 0, diags
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != 0 || n < int64(lo) || n > int64(hi) {
		return 0, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid number",
			Detail: fmt.Sprintf("%s must be a whole number from %d to %d.", a.Name, lo, hi), Subject: a.Expr.Range().Ptr()}}
	}
	return int(n), nil
}

func staticFraction(a *hcl.Attribute) (float64, hcl.Diagnostics) {
	v, diags := staticValue(a, cty.Number)
	if diags.HasErrors() {
		return 0, diags
	}
	f, _ := v.AsBigFloat().Float64()
	if math.IsNaN(f) || f < 0 || f > 1 {
		return 0, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid fraction",
			Detail: fmt.Sprintf("%s must be between 0 and 1.", a.Name), Subject: a.Expr.Range().Ptr()}}
	}
	return f, nil
}

func errText(err error) string {
	var he *huberr.Error
	if errors.As(err, &he) {
		return he.Msg
	}
	return err.Error()
}
