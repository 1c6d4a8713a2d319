package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/dynblock"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/sas"
	"github.com/iotplan/iotplan/internal/state"
	"github.com/iotplan/iotplan/internal/tier"
)

// decodeHub decodes the hub block: its connection string (optional: the CLI falls back to
// IOTHUB_CONNECTION_STRING), tier and units.
func (l *loader) decodeHub() {
	if len(l.hubBlocks) == 0 {
		return
	}
	b := l.hubBlocks[0]
	content, diags := b.Body.Content(hubSchema)
	l.diags = append(l.diags, diags...)
	if content == nil {
		return
	}
	hub := &Hub{DeclRange: b.DefRange}
	ok := !diags.HasErrors()
	if a, found := content.Attributes["connection_string"]; found {
		cs, good := l.hubConnectionString(b, a)
		hub.ConnectionString, ok = cs, ok && good
	}
	ok = l.hubTier(content, hub) && ok
	if a, found := content.Attributes["state"]; found {
		name, good := l.stringAttr(a, phaseHub, l.evalContext(phaseHub))
		if good {
			if err := state.CheckName(name); err != nil {
				l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid state name",
					Detail: upperFirst(err.Error()) + ".", Subject: a.Expr.Range().Ptr()})
				good = false
			}
		}
		hub.State, ok = name, ok && good
	}
	if ok {
		l.cfg.Hub = hub
	}
}

// hubTier decodes tier and units and checks them with internal/tier (the one table of tiers).
func (l *loader) hubTier(content *hcl.BodyContent, hub *Hub) bool {
	ok := true
	ctx := l.evalContext(phaseHub)
	if a, found := content.Attributes["tier"]; found {
		s, good := l.stringAttr(a, phaseHub, ctx)
		hub.Tier, ok = s, good
	}
	unitsAttr, found := content.Attributes["units"]
	if found {
		n, good := l.intAttr(unitsAttr, phaseHub, ctx)
		hub.Units, ok = n, ok && good
	}
	if !ok {
		return false
	}
	t, err := tier.Parse(hub.Tier, hub.Units)
	if err != nil {
		subject := content.Attributes["tier"]
		if errors.Is(err, tier.ErrUnits) && found {
			subject = unitsAttr
		}
		d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid hub tier", Detail: upperFirst(err.Error()) + "."}
		if subject != nil {
			d.Subject = subject.Expr.Range().Ptr()
		}
		l.diags = append(l.diags, d)
		return false
	}
	hub.Tier = t.Name // canonical: trimmed, upper case
	return true
}

// intAttr evaluates an attribute that must be a whole number.
func (l *loader) intAttr(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (int, bool) {
	bf, ok := l.numberAttr(a, ph, ctx)
	if ok && bf != nil && bf.IsInt() {
		if n, acc := bf.Int64(); acc == 0 && n >= -1<<31 && n < 1<<31 {
			return int(n), true
		}
	}
	if ok {
		l.diags = append(l.diags, attrTypeDiag(a, "whole number"))
	}
	return 0, false
}

// numberAttr evaluates an attribute that must be a number: nil (reported as the caller's
// type) when it is something else; ok is false when it could not be evaluated (reported).
func (l *loader) numberAttr(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (*big.Float, bool) {
	v, ok := l.eval(a.Expr, ph, ctx)
	if !ok {
		return nil, false
	}
	v, _ = v.UnmarkDeep()
	nv, err := convert.Convert(v, cty.Number)
	if err != nil || nv.IsNull() {
		return nil, true
	}
	return nv.AsBigFloat(), true
}

// hubConnectionString decodes connection_string. Diagnostics about it point at the block
// header, never at the value, so that no snippet of the file shows it.
func (l *loader) hubConnectionString(b *hcl.Block, a *hcl.Attribute) (string, bool) {
	// The subject is the block header, unless the value is written on that
	// same line: then the snippet would show it, so the diagnostic gets no
	// subject and names the place in its detail instead.
	subject := b.DefRange.Ptr()
	where := ""
	if r := a.Expr.Range(); r.Start.Line <= b.DefRange.End.Line {
		subject = nil
		where = fmt.Sprintf("In the hub block at %s:%d: ", b.DefRange.Filename, b.DefRange.Start.Line)
	}
	report := func(sev hcl.DiagnosticSeverity, summary, detail string) {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: where + detail, Subject: subject})
	}
	bad := func(summary, detail string) (string, bool) {
		report(hcl.DiagError, summary, detail)
		return "", false
	}
	if !l.checkRefs(a.Expr, phaseHub) {
		return "", false
	}
	v, vdiags := a.Expr.Value(l.evalContext(phaseHub))
	if vdiags.HasErrors() {
		// HCL's own messages describe types and references, not values;
		// keep them but re-point them at the block header.
		for _, d := range vdiags {
			if d.Severity == hcl.DiagError {
				report(hcl.DiagError, d.Summary, d.Detail)
			}
		}
		return "", false
	}
	if !v.IsWhollyKnown() {
		l.requireEarlierError(b.DefRange)
		return "", false
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return bad("Missing connection string", "connection_string is null. Set it to a service connection string (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...), or leave it out to use IOTHUB_CONNECTION_STRING.")
	}
	sv, err := convert.Convert(v, cty.String)
	if err != nil {
		return bad("Incorrect attribute value type", `Inappropriate value for attribute "connection_string": string required.`)
	}
	cs := sv.AsString()
	if msg := connectionStringProblem(cs); msg != "" {
		return bad("Invalid connection string", msg+" (The value is not shown because it is a secret.)")
	}
	// A literal secret in a file tends to end up in version control.
	if len(a.Expr.Variables()) == 0 {
		report(hcl.DiagWarning, "Connection string written in the configuration",
			"The hub block holds the connection string itself. Prefer a sensitive variable (connection_string = var.hub_connection_string) or the IOTHUB_CONNECTION_STRING environment variable, so the key stays out of files.")
	}
	return cs, true
}

// connectionStringProblem checks a service connection string with the same
// parser the hub client uses (whose errors never quote the string), and
// describes what is wrong, or returns "".
func connectionStringProblem(cs string) string {
	c, err := sas.ParseConnectionString(cs)
	if err != nil {
		return upperFirst(err.Error()) + "."
	}
	if c.DeviceID != "" {
		return "This is a device connection string (it has DeviceId); iotplan needs a service connection string, with a shared access policy such as iothubowner."
	}
	return ""
}

// decodeTwins decodes every twin block's instances and publishes twin.<name> for the later
// phases.
func (l *loader) decodeTwins() {
	l.decodeResources("twin", l.twinBlocks, twinSchema, phaseTwins, l.twinVals, func(b *hcl.Block, inst instance, content *hcl.BodyContent, ok bool) (string, cty.Value, bool) {
		t := l.decodeTwin(b, inst, content, ok)
		if t == nil {
			return "", cty.NilVal, false
		}
		l.cfg.Twins = append(l.cfg.Twins, t)
		return t.Addr, targetValue(t.TargetSrc, t.TargetSensitive), true
	})
}

// decodeMethods decodes every method block's instances and publishes method.<name> for
// the output phase.
func (l *loader) decodeMethods() {
	l.decodeResources("method", l.methodBlocks, methodSchema, phaseMethods, l.methodVals, func(b *hcl.Block, inst instance, content *hcl.BodyContent, ok bool) (string, cty.Value, bool) {
		m := l.decodeMethod(b, inst, content, ok)
		if m == nil {
			return "", cty.NilVal, false
		}
		l.cfg.Methods = append(l.cfg.Methods, m)
		return m.Addr, targetValue(m.TargetSrc, m.TargetSensitive), true
	})
}

// decodeResources decodes the instances of every block of one kind (twin, method) with
// decode, which returns a decoded instance's address and target, and publishes
// <kind>.<name> in vals: unknown while the blocks are decoded, so that a reference to a
// broken one is skipped without a second report.
func (l *loader) decodeResources(kind string, blocks []*hcl.Block, sch *hcl.BodySchema, ph phase, vals map[string]cty.Value,
	decode func(*hcl.Block, instance, *hcl.BodyContent, bool) (string, cty.Value, bool)) {
	for _, b := range blocks {
		vals[b.Labels[0]] = cty.DynamicVal
	}
	ctx := l.evalContext(ph)
	for _, b := range blocks {
		r := l.eachInstance(b, sch, ph, ctx, func(inst instance, content *hcl.BodyContent, ok bool) cty.Value {
			addr, target, good := decode(b, inst, content, ok)
			if !good {
				return cty.DynamicVal
			}
			return l.resourceObject(addr, target)
		})
		l.resources[kind+"."+b.Labels[0]] = r
		vals[b.Labels[0]] = r.value()
	}
}

// targetValue is a target as references read it: marked when it uses a sensitive value,
// so that a method targeting the same devices hides it too.
func targetValue(src string, sensitive bool) cty.Value {
	v := cty.StringVal(src)
	if sensitive {
		v = v.Mark(sensitiveMark)
	}
	return v
}

// eachInstance expands a twin or method block into its instances (for_each, count) and
// decodes each with decode, given the instance's body content (dynamic blocks expanded) and
// whether that content decoded without errors. The body's own diagnostics are reported
// once, not once per instance.
func (l *loader) eachInstance(b *hcl.Block, sch *hcl.BodySchema, ph phase, ctx *hcl.EvalContext, decode func(instance, *hcl.BodyContent, bool) cty.Value) *repeated {
	meta, _, _ := b.Body.PartialContent(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "for_each"}, {Name: "count"}}})
	insts, repeat, ok := l.instances(meta.Attributes["for_each"], meta.Attributes["count"], ph, ctx)
	r := &repeated{repeat: repeat}
	if !ok {
		r.items = append(r.items, repeatedItem{val: cty.DynamicVal})
		r.repeat = ""
		return r
	}
	l.repeat = repeat
	defer func() { l.repeat = "" }()
	if len(insts) == 0 {
		// No instance (count = 0, for_each = {}): the body is still checked against the
		// schema, so a mistake does not wait for the first instance to show.
		_, diags := b.Body.Content(sch)
		l.diags = append(l.diags, diags...)
	}
	for i, inst := range insts {
		content, diags := dynblock.Expand(b.Body, inst.ctx).Content(sch)
		if i == 0 {
			l.diags = append(l.diags, diags...)
		}
		if content == nil {
			r.items = append(r.items, repeatedItem{key: inst.key, val: cty.DynamicVal})
			continue
		}
		r.items = append(r.items, repeatedItem{key: inst.key, val: decode(inst, content, !diags.HasErrors())})
	}
	return r
}

// decodeTwin decodes one instance of a twin block; nil if it has errors (reported).
func (l *loader) decodeTwin(b *hcl.Block, inst instance, content *hcl.BodyContent, ok bool) *Twin {
	name := b.Labels[0]
	t := &Twin{Name: name, Addr: l.address("twin", name, inst.keyText), Module: l.addr, Key: inst.keyText, DeclRange: b.DefRange}
	ctx := inst.ctx
	if a, found := content.Attributes["target"]; found {
		t.TargetRange = a.Expr.Range()
		e, src, sensitive, good := l.target(a, phaseTwins, ctx)
		if good {
			t.Target, t.TargetSrc, t.TargetSensitive = e, src, sensitive
		}
		ok = ok && good
	}
	// A section that failed to evaluate counts as set: its error is enough.
	desiredSet, tagsSet := false, false
	if a, found := content.Attributes["desired"]; found {
		m, secret, set, good := l.twinSection(a, "desired", MaxDesiredBytes, ctx)
		if set {
			t.Desired, t.DesiredRange = m, a.Expr.Range()
			t.Sensitive = append(t.Sensitive, secret...)
		}
		desiredSet = set || !good
		ok = ok && good
	}
	if a, found := content.Attributes["tags"]; found {
		m, secret, set, good := l.twinSection(a, "tags", MaxTagsBytes, ctx)
		if set {
			t.Tags, t.TagsRange = m, a.Expr.Range()
			t.Sensitive = append(t.Sensitive, secret...)
		}
		tagsSet = set || !good
		ok = ok && good
	}
	ok = l.jobTiming(content, phaseTwins, ctx, &t.MaxExecution, &t.StartTime) && ok
	ok = l.lifecycle(content, ctx, t) && ok
	rollout, good := l.rolloutBlock(content, phaseTwins, ctx)
	t.Rollout, ok = rollout, ok && good
	converge, good := l.convergeBlock(content, ctx)
	t.Converge, ok = converge, ok && good
	if t.Converge != nil && t.Desired == nil && desiredSet {
		ok = false // desired failed to evaluate: reported.
	} else if t.Converge != nil && t.Desired == nil {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Nothing to converge",
			Detail:  "converge waits until devices report the desired properties, but this twin manages tags only: remove the converge block.",
			Subject: t.Converge.DeclRange.Ptr()})
		ok = false
	}
	if !desiredSet && !tagsSet {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Twin manages nothing",
			Detail:   fmt.Sprintf("The twin block %q has neither desired nor tags. Declare the desired properties and/or tags it manages, e.g. desired = { floor = 3 }.", name),
			Subject:  b.DefRange.Ptr(),
		})
		ok = false
	}
	if !ok {
		return nil
	}
	return t
}

// twinSection evaluates desired or tags. set is false for null (which, as
// for any HCL attribute, means "not set"): the section is then not managed.
// secret names the keys whose values are sensitive (see Twin.Sensitive).
func (l *loader) twinSection(a *hcl.Attribute, section string, maxBytes int, ctx *hcl.EvalContext) (m map[string]any, secret []string, set, ok bool) {
	var marked cty.Value
	m, marked, set, ok = l.twinSectionValue(a, section, maxBytes, ctx)
	if set && ok {
		secret = sensitiveKeys(section, marked)
	}
	return m, secret, set, ok
}

// sensitiveKeys names, as plans show keys, the parts of a section's value that carry the
// sensitive mark: a marked object key names itself; a mark inside an array (managed whole)
// names the array; a mark on the whole value names the section.
func sensitiveKeys(section string, v cty.Value) []string {
	_, pvms := v.UnmarkDeepWithPaths()
	var names []string
	seen := map[string]bool{}
	for _, pvm := range pvms {
		if _, marked := pvm.Marks[sensitiveMark]; !marked {
			continue
		}
		name := section
	path:
		for _, step := range pvm.Path {
			switch st := step.(type) {
			case cty.GetAttrStep:
				name += "." + st.Name
			case cty.IndexStep:
				if st.Key.Type() != cty.String {
					break path // an array element: the array is the managed leaf
				}
				name += "." + st.Key.AsString()
			}
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

// twinSectionValue is twinSection's evaluation; marked is the value before its marks were
// taken off.
func (l *loader) twinSectionValue(a *hcl.Attribute, section string, maxBytes int, ctx *hcl.EvalContext) (m map[string]any, marked cty.Value, set, ok bool) {
	v, good := l.eval(a.Expr, phaseTwins, ctx)
	if !good {
		return nil, v, false, false
	}
	marked = v
	// Report duplicate keys and then go on, so one run shows every problem.
	dupsOK := l.checkDuplicateKeys(a.Expr, ctx)
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return nil, marked, false, dupsOK
	}
	ty := v.Type()
	if !ty.IsObjectType() && !ty.IsMapType() {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Incorrect attribute value type",
			Detail:   fmt.Sprintf("%s must be an object of the keys to manage, like { building = \"43\", floor = 3 }, not a %s.", section, ty.FriendlyName()),
			Subject:  a.Expr.Range().Ptr(),
		})
		return nil, marked, false, false
	}
	c := newConverter(l, ctx, true)
	out, _ := c.convert(v, a.Expr, true, section, 1).(map[string]any)
	if !c.ok || !dupsOK {
		return nil, marked, false, false
	}
	if size := hubapi.TwinSize(out); size > maxBytes {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Twin section too large",
			Detail:   fmt.Sprintf("These %s add up to %d bytes as the hub counts them (key and value lengths); the hub limits %s to %d bytes per device.", section, size, section, maxBytes),
			Subject:  a.Expr.Range().Ptr(),
		})
		return nil, marked, false, false
	}
	if len(out) == 0 {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  fmt.Sprintf("Empty %s", section),
			Detail:   fmt.Sprintf("%s = {} manages no key. Remove it, or declare the keys to manage.", section),
			Subject:  a.Expr.Range().Ptr(),
		})
	}
	return out, marked, true, true
}

// lifecycle decodes a twin block's lifecycle blocks (at most one).
func (l *loader) lifecycle(content *hcl.BodyContent, ctx *hcl.EvalContext, t *Twin) bool {
	ok := true
	for i, b := range content.Blocks.OfType("lifecycle") {
		if i > 0 {
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate lifecycle block",
				Detail: "A twin block has at most one lifecycle block.", Subject: b.DefRange.Ptr()})
			ok = false
			continue
		}
		body, diags := b.Body.Content(lifecycleSchema)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			ok = false
			continue
		}
		if a, found := body.Attributes["keep_on_removal"]; found {
			v, good := l.boolAttr(a, phaseTwins, ctx)
			t.KeepOnRemoval, ok = v, ok && good
		}
	}
	return ok
}

// boolAttr evaluates an attribute that must be a bool (null = false).
func (l *loader) boolAttr(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (bool, bool) {
	v, ok := l.eval(a.Expr, ph, ctx)
	if !ok {
		return false, false
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return false, true
	}
	bv, err := convert.Convert(v, cty.Bool)
	if err != nil {
		l.diags = append(l.diags, attrTypeDiag(a, "bool"))
		return false, false
	}
	return bv.True(), true
}

// maxExecutionRule is the detail of a max_execution out of range.
const maxExecutionRule = "A job must be allowed to run at least 1s."

// jobTiming decodes the max_execution and start_time of a twin or method block, evaluated in
// phase ph.
func (l *loader) jobTiming(content *hcl.BodyContent, ph phase, ctx *hcl.EvalContext, maxExec *time.Duration, start *time.Time) bool {
	ok := true
	if a, found := content.Attributes["max_execution"]; found {
		v, set, good := l.duration(a, ph, ctx, time.Second, 0, maxExecutionRule)
		if set {
			*maxExec = v
		}
		ok = good
	}
	if a, found := content.Attributes["start_time"]; found {
		t, good := l.startTime(a, ph, ctx)
		*start = t
		ok = ok && good
	}
	return ok
}

// decodeMethod decodes one instance of a method block; nil if it has errors (reported).
func (l *loader) decodeMethod(b *hcl.Block, inst instance, content *hcl.BodyContent, ok bool) *Method {
	name := b.Labels[0]
	m := &Method{
		Name: name, Addr: l.address("method", name, inst.keyText), Module: l.addr, Key: inst.keyText, DeclRange: b.DefRange,
		ResponseTimeout: DefaultResponseTimeout,
		ConnectTimeout:  DefaultConnectTimeout,
	}
	ctx := inst.ctx

	if a, found := content.Attributes["target"]; found {
		m.TargetRange = a.Expr.Range()
		e, src, sensitive, good := l.target(a, phaseMethods, ctx)
		m.Target, m.TargetSrc, m.TargetSensitive = e, src, sensitive
		ok = ok && good
	}
	if a, found := content.Attributes["method"]; found {
		s, good := l.stringAttr(a, phaseMethods, ctx)
		if good {
			if msg := methodNameProblem(s); msg != "" {
				l.diags = append(l.diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid method name",
					Detail:   msg,
					Subject:  a.Expr.Range().Ptr(),
				})
				good = false
			}
		}
		m.Method = s
		ok = ok && good
	}
	if a, found := content.Attributes["payload"]; found {
		p, sensitive, good := l.payload(a, ctx)
		m.Payload, m.PayloadSensitive = p, sensitive
		ok = ok && good
	}
	if a, found := content.Attributes["triggers"]; found {
		v, sensitive, good := l.payload(a, ctx)
		m.Triggers, m.TriggersSensitive, m.TriggersSet = v, sensitive, good && v != nil
		ok = ok && good
	}
	durations := []struct {
		name     string
		dst      *time.Duration
		min, max time.Duration
		rule     string
	}{
		{"response_timeout", &m.ResponseTimeout, MinResponseTimeout, MaxResponseTimeout, "The hub accepts response timeouts from 5s to 300s (5m)."},
		{"connect_timeout", &m.ConnectTimeout, 0, MaxConnectTimeout, "The hub accepts connect timeouts from 0s (devices must be online) to 300s (5m)."},
	}
	for _, d := range durations {
		a, found := content.Attributes[d.name]
		if !found {
			continue
		}
		v, set, good := l.duration(a, phaseMethods, ctx, d.min, d.max, d.rule)
		if set {
			*d.dst = v
		}
		ok = ok && good
	}
	ok = l.jobTiming(content, phaseMethods, ctx, &m.MaxExecution, &m.StartTime) && ok
	rollout, good := l.rolloutBlock(content, phaseMethods, ctx)
	m.Rollout, ok = rollout, ok && good
	if !ok {
		return nil
	}
	return m
}

// stringAttr evaluates an attribute that must be a non-null string.
func (l *loader) stringAttr(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (string, bool) {
	v, ok := l.eval(a.Expr, ph, ctx)
	if !ok {
		return "", false
	}
	v, _ = v.UnmarkDeep()
	sv, err := convert.Convert(v, cty.String)
	if err != nil || sv.IsNull() {
		l.diags = append(l.diags, attrTypeDiag(a, "string"))
		return "", false
	}
	return sv.AsString(), true
}

// methodNameProblem applies the hub's rule for method names: US-ASCII
// printable characters except $ ( ) < > @ , ; : \ " / [ ] ? = { } and
// spaces (names travel in MQTT topics and HTTP paths).
func methodNameProblem(s string) string {
	if s == "" {
		return "method must name the direct method to invoke, e.g. \"lockDoor\"."
	}
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`$()<>@,;:\"/[]?={}`, r) {
			what := fmt.Sprintf("%q", r)
			if r == ' ' {
				what = "a space"
			}
			return fmt.Sprintf("The method name contains %s. The hub accepts printable US-ASCII characters except spaces and $ ( ) < > @ , ; : \\ \" / [ ] ? = { }.", what)
		}
	}
	return ""
}

// payload evaluates a method's payload or triggers (a.Name): any JSON value up to the
// hub's payload size; sensitive: it uses sensitive values.
func (l *loader) payload(a *hcl.Attribute, ctx *hcl.EvalContext) (p any, sensitive, ok bool) {
	v, good := l.eval(a.Expr, phaseMethods, ctx)
	if !good {
		return nil, false, false
	}
	dupsOK := l.checkDuplicateKeys(a.Expr, ctx)
	v, marks := v.UnmarkDeep()
	sensitive = len(marks) > 0
	c := newConverter(l, ctx, false)
	p = c.convert(v, a.Expr, true, a.Name, 1)
	if !c.ok || !dupsOK {
		return nil, false, false
	}
	b, err := json.Marshal(p)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid " + a.Name,
			Detail:   "The value cannot be encoded as JSON: " + err.Error(),
			Subject:  a.Expr.Range().Ptr(),
		})
		return nil, false, false
	}
	if len(b) > MaxPayloadBytes {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  upperFirst(a.Name) + " too large",
			Detail:   fmt.Sprintf("%s is %d bytes as JSON; iotplan accepts at most %d bytes (128 KB, the hub's limit on method payloads).", a.Name, len(b), MaxPayloadBytes),
			Subject:  a.Expr.Range().Ptr(),
		})
		return nil, false, false
	}
	return p, sensitive, true
}

// duration parses a Go/Terraform duration string ("15s", "5m", "1h30m")
// and checks it against [min, max] (max 0 = no upper bound). The hub counts
// in whole seconds, so fractions are refused rather than rounded.
func (l *loader) duration(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext, min, max time.Duration, rule string) (d time.Duration, set, ok bool) {
	v, ok := l.eval(a.Expr, ph, ctx)
	if !ok {
		return 0, false, false
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return 0, false, true // null = not set = the default
	}
	bad := func(summary, detail string) (time.Duration, bool, bool) {
		l.diags = append(l.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  summary,
			Detail:   detail,
			Subject:  a.Expr.Range().Ptr(),
		})
		return 0, false, false
	}
	if v.Type() != cty.String {
		return bad("Invalid duration", fmt.Sprintf("%s must be a duration string such as \"15s\", \"5m\" or \"1h30m\", not a %s.", a.Name, v.Type().FriendlyName()))
	}
	d, err := time.ParseDuration(strings.TrimSpace(v.AsString()))
	if err != nil {
		return bad("Invalid duration", fmt.Sprintf("%s must be a duration string such as \"15s\", \"5m\" or \"1h30m\" (units: s, m, h).", a.Name))
	}
	if d%time.Second != 0 {
		return bad("Invalid duration", fmt.Sprintf("%s must be a whole number of seconds: the hub counts it in seconds.", a.Name))
	}
	if d < min || (max > 0 && d > max) {
		return bad("Duration out of range", fmt.Sprintf("%s is %s. %s", a.Name, d, rule))
	}
	// The hub's fields are 32-bit seconds.
	if d/time.Second > 1<<31-1 {
		return bad("Duration out of range", fmt.Sprintf("%s is %s, more than the hub can represent.", a.Name, d))
	}
	return d, true, true
}

// startTime parses an RFC 3339 time ("2026-12-01T02:00:00Z").
func (l *loader) startTime(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (time.Time, bool) {
	v, ok := l.eval(a.Expr, ph, ctx)
	if !ok {
		return time.Time{}, false
	}
	v, _ = v.UnmarkDeep()
	if v.IsNull() {
		return time.Time{}, true // null = not set = now
	}
	if v.Type() == cty.String {
		if t, err := time.Parse(time.RFC3339, strings.TrimSpace(v.AsString())); err == nil {
			return t.UTC(), true
		}
	}
	l.diags = append(l.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid start time",
		Detail:   "start_time must be an RFC 3339 time with a time zone, such as \"2026-12-01T02:00:00Z\" or \"2026-12-01T03:00:00+01:00\".",
		Subject:  a.Expr.Range().Ptr(),
	})
	return time.Time{}, false
}
