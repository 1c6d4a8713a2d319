package schema

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// A rollout block stages a change as AWS IoT Jobs' rollout and abort configurations do
// (https://docs.aws.amazon.com/iot/latest/developerguide/jobs-configurations-details.html):
//
//	rollout {
//	  waves             = ["1%", "10%", "100%"]   # cumulative; counts allowed ("50")
//	  max_failure_ratio = 0.05                    # abort when a wave's failed/attempted exceeds it
//	  max_failures      = 100                     # or when a wave has more failed devices
//	  pause             = "10m"                   # between waves
//	}
//
// A converge block makes apply wait until devices report what they were told:
//
//	converge {
//	  reported  = true    # the only mode: properties.reported equals desired for the managed keys
//	  timeout   = "30m"
//	  min_ratio = 0.95    # share of the targeted devices that must report the desired values
//	}

// rolloutBlock decodes the at most one rollout block of a twin or method block.
func (l *loader) rolloutBlock(content *hcl.BodyContent, ph phase, ctx *hcl.EvalContext) (*Rollout, bool) {
	b, ok := l.singleBlock(content, "rollout")
	if b == nil {
		return nil, ok
	}
	body, diags := b.Body.Content(rolloutSchema)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return nil, false
	}
	r := &Rollout{MaxFailureRatio: -1, MaxFailures: -1, DeclRange: b.DefRange}
	ok = l.waves(body.Attributes["waves"], ph, ctx, r)
	if a, found := body.Attributes["max_failure_ratio"]; found {
		v, good := l.ratioAttr(a, ph, ctx)
		r.MaxFailureRatio, ok = v, ok && good
	}
	if a, found := body.Attributes["max_failures"]; found {
		n, good := l.intAttr(a, ph, ctx)
		if good && n < 0 {
			l.diags = append(l.diags, attrTypeDiag(a, "whole number of 0 or more"))
			good = false
		}
		r.MaxFailures, ok = n, ok && good
	}
	if a, found := body.Attributes["pause"]; found {
		d, set, good := l.duration(a, ph, ctx, 0, 0, "")
		if set {
			r.Pause = d
		}
		ok = ok && good
	}
	if !ok {
		return nil, false
	}
	return r, true
}

// singleBlock returns the one block of a type in content (nil when there is none), reporting
// a second one.
func (l *loader) singleBlock(content *hcl.BodyContent, typ string) (*hcl.Block, bool) {
	blocks := content.Blocks.OfType(typ)
	for _, b := range blocks[min(1, len(blocks)):] {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate " + typ + " block",
			Detail: fmt.Sprintf("A resource has at most one %s block.", typ), Subject: b.DefRange.Ptr()})
	}
	if len(blocks) == 0 {
		return nil, true
	}
	return blocks[0], len(blocks) == 1
}

// waves decodes waves: a list of "N%" and "N" strings, cumulative and ending with "100%".
func (l *loader) waves(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext, r *Rollout) bool {
	v, ok := l.eval(a.Expr, ph, ctx)
	if !ok {
		return false
	}
	v, _ = v.UnmarkDeep()
	bad := func(detail string) bool {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid waves", Detail: detail, Subject: a.Expr.Range().Ptr()})
		return false
	}
	lv, err := convert.Convert(v, cty.List(cty.String))
	if err != nil || lv.IsNull() || lv.LengthInt() == 0 {
		return bad(`waves is a list of cumulative shares, such as ["1%", "10%", "100%"] or ["50", "100%"].`)
	}
	if lv.LengthInt() > MaxWaves {
		return bad(fmt.Sprintf("A rollout has at most %d waves: each is one IoT Hub job.", MaxWaves))
	}
	prevPct, prevCount := 0.0, 0
	for it := lv.ElementIterator(); it.Next(); {
		_, ev := it.Element()
		w, msg := parseWave(ev.AsString())
		if msg != "" {
			return bad(msg)
		}
		if (w.Percent > 0 && w.Percent <= prevPct) || (w.Count > 0 && w.Count <= prevCount) {
			return bad(fmt.Sprintf("Waves are cumulative: %q must be larger than the wave of the same kind before it.", w.Text))
		}
		prevPct, prevCount = max(prevPct, w.Percent), max(prevCount, w.Count)
		r.Waves = append(r.Waves, w)
	}
	if last := r.Waves[len(r.Waves)-1]; last.Percent != 100 {
		return bad(`The last wave must be "100%", so that the rollout reaches every device the resource changes.`)
	}
	return true
}

// parseWave reads "12.5%" or "50"; msg says what is wrong.
func parseWave(s string) (Wave, string) {
	t := strings.TrimSpace(s)
	if pct, isPct := strings.CutSuffix(t, "%"); isPct {
		f, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
			return Wave{}, fmt.Sprintf("%q is not a share: write a percentage above 0%% and at most 100%%, such as \"10%%\".", clip(s))
		}
		return Wave{Text: t, Percent: f}, ""
	}
	n, err := strconv.Atoi(t)
	if err != nil || n <= 0 {
		return Wave{}, fmt.Sprintf("%q is neither a percentage (\"10%%\") nor a device count (\"50\").", clip(s))
	}
	return Wave{Text: t, Count: n}, ""
}

// ratioAttr evaluates a number from 0 to 1.
func (l *loader) ratioAttr(a *hcl.Attribute, ph phase, ctx *hcl.EvalContext) (float64, bool) {
	bf, ok := l.numberAttr(a, ph, ctx)
	if ok && bf != nil {
		if f, _ := bf.Float64(); f >= 0 && f <= 1 {
			return f, true
		}
	}
	if ok {
		l.diags = append(l.diags, attrTypeDiag(a, "number from 0 to 1"))
	}
	return 0, false
}

// convergeBlock decodes the at most one converge block of a twin block.
func (l *loader) convergeBlock(content *hcl.BodyContent, ctx *hcl.EvalContext) (*Converge, bool) {
	b, ok := l.singleBlock(content, "converge")
	if b == nil {
		return nil, ok
	}
	body, diags := b.Body.Content(convergeSchema)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() {
		return nil, false
	}
	c := &Converge{Timeout: DefaultConvergeTimeout, MinRatio: DefaultConvergeMinRatio, DeclRange: b.DefRange}
	ok = true
	if a, found := body.Attributes["reported"]; found {
		v, good := l.boolAttr(a, phaseTwins, ctx)
		if good && !v {
			l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported converge mode",
				Detail: "converge waits for reported properties only: reported = true, or leave the block out.", Subject: a.Expr.Range().Ptr()})
			good = false
		}
		ok = good
	}
	if a, found := body.Attributes["timeout"]; found {
		d, set, good := l.duration(a, phaseTwins, ctx, time.Second, 0, "converge waits at least 1s.")
		if set {
			c.Timeout = d
		}
		ok = ok && good
	}
	if a, found := body.Attributes["min_ratio"]; found {
		v, good := l.ratioAttr(a, phaseTwins, ctx)
		c.MinRatio, ok = v, ok && good
	}
	if !ok {
		return nil, false
	}
	return c, true
}
