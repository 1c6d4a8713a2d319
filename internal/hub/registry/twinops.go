package registry

import (
	"github.com/iotplan/iotplan/internal/hubapi"
)

// GetTwin returns a copy of the twin document, as GET /twins/{id} returns it.
func (r *Registry) GetTwin(deviceID string) (map[string]any, error) {
	e := r.get(deviceID)
	if e == nil {
		return nil, notFound(deviceID)
	}
	return e.Map(), nil
}

// twinWrite is the common path of UpdateTwin, ReplaceTwin and PatchReported for devices
// (moduleID "") and modules. The change is computed on a copy outside the registry's mutex
// (optimistically): the mutex is then held only to check that the twin is still the version
// the change was made on, to take the write's place in the commit order and to publish it.
// Under a job's thousand concurrent writers the merge under the mutex serialised them
// (BENCHMARKS.md, "The local hub at a million devices"). A twin written meanwhile is changed
// again from its new version.
func (r *Registry) twinWrite(deviceID, moduleID, ifMatch string, change func(e *entry, now int64) error) (*entry, error) {
	for {
		now := r.nowNanos()
		r.mu.RLock()
		old, err := r.lookupLocked(deviceID, moduleID)
		r.mu.RUnlock()
		if err != nil {
			return nil, err
		}
		if want := parseIfMatch(ifMatch); want != "" && want != etagString(old.tw.etag) {
			return nil, preconditionFailed()
		}
		e := old.clone()
		if err := change(e, now); err != nil {
			return nil, err
		}
		stale, err := r.publishCurrent([]twinKey{{deviceID, moduleID}}, []*entry{old}, []*entry{e})
		if stale[0] {
			continue
		}
		if err != nil {
			return nil, err
		}
		return e, nil
	}
}

// twinKey names a device twin (moduleID "") or a module twin.
type twinKey struct{ deviceID, moduleID string }

// publishCurrent publishes each written entry news[i] (nil: none) whose twin is still olds[i],
// under one hold of the mutex, and returns once they are durable: they are reserved in publish
// order, encoded and waited for without the mutex, so that concurrent writers share one
// commit. Readers may see a write a moment before it is durable; it is acknowledged only
// after. The encoding reads the published entries, which never change. stale[i] marks a twin
// written meanwhile, which was not published.
func (r *Registry) publishCurrent(keys []twinKey, olds, news []*entry) (stale []bool, err error) {
	stale = make([]bool, len(keys))
	var published []*entry
	r.mu.Lock()
	for i, k := range keys {
		if news[i] == nil {
			continue
		}
		if cur, _ := r.lookupLocked(k.deviceID, k.moduleID); cur != olds[i] {
			stale[i] = true
			continue
		}
		r.publish(news[i])
		published = append(published, news[i])
	}
	if len(published) == 0 {
		r.mu.Unlock()
		return stale, nil
	}
	op := r.commit.reserve()
	r.mu.Unlock()
	op.prepare(records(published, false, true))
	if err := r.commit.wait(op); err != nil {
		return stale, storeError(err)
	}
	return stale, nil
}

// lookupLocked finds a device (moduleID "") or module entry; callers hold r.mu.
func (r *Registry) lookupLocked(deviceID, moduleID string) (*entry, error) {
	if moduleID == "" {
		if e := r.byID[deviceID]; e != nil {
			return e, nil
		}
		return nil, notFound(deviceID)
	}
	if e := r.mods[moduleKey(deviceID, moduleID)]; e != nil {
		return e, nil
	}
	if r.byID[deviceID] == nil {
		return nil, notFound(deviceID)
	}
	return nil, moduleNotFound(deviceID, moduleID)
}

func patchSections(p hubapi.TwinPatch) (tags, desired map[string]any, err error) {
	if tags, err = normalizeMap(p.Tags); err != nil {
		return nil, nil, patchError("tags", err)
	}
	if p.Properties != nil {
		if desired, err = normalizeMap(p.Properties.Desired); err != nil {
			return nil, nil, patchError("properties.desired", err)
		}
	}
	if err := checkKeys("tags", tags); err != nil {
		return nil, nil, err
	}
	if err := checkKeys("properties.desired", desired); err != nil {
		return nil, nil, err
	}
	return tags, desired, nil
}

// Section names in the hub's size messages.
const (
	sizeTags     = "Tags"
	sizeDesired  = "Properties.Desired"
	sizeReported = "Properties.Reported"
)

// UpdateTwin merge-patches tags and desired properties (PATCH /twins/{id}). Read-only members
// of the patch (deviceId, etag, properties.reported, ...) are ignored, as the hub does. ifMatch
// is the If-Match header ("" or "*" = unconditional). Returns the new twin document (a copy).
// The hub's limits apply (see checkKeys and checkSize).
func (r *Registry) UpdateTwin(deviceID string, patch hubapi.TwinPatch, ifMatch string) (map[string]any, error) {
	return r.updateTwin(deviceID, "", patch, ifMatch)
}

func (r *Registry) updateTwin(deviceID, moduleID string, patch hubapi.TwinPatch, ifMatch string) (map[string]any, error) {
	p, err := PreparePatch(patch)
	if err != nil {
		return nil, err
	}
	e, err := r.applyPatch(deviceID, moduleID, p, ifMatch)
	if err != nil {
		return nil, err
	}
	return e.Map(), nil
}

// PreparedPatch is a twin patch (tags and desired properties) checked and normalised once, so
// that a job applies it to each of its devices without doing that again (ApplyPatches).
type PreparedPatch struct{ tags, desired map[string]any }

// PreparePatch checks and normalises a patch as UpdateTwin does.
func PreparePatch(patch hubapi.TwinPatch) (*PreparedPatch, error) {
	tags, desired, err := patchSections(patch)
	if err != nil {
		return nil, err
	}
	return &PreparedPatch{tags: tags, desired: desired}, nil
}

func (r *Registry) applyPatch(deviceID, moduleID string, p *PreparedPatch, ifMatch string) (*entry, error) {
	var changed patchChanges
	e, err := r.twinWrite(deviceID, moduleID, ifMatch, func(e *entry, now int64) (err error) {
		changed, err = p.apply(e, now)
		return err
	})
	if err != nil {
		return nil, err
	}
	if moduleID == "" {
		r.notify(e, changed)
	}
	return e, nil
}

// patchChanges says which sections a patch changed, for the notifications.
type patchChanges struct{ tags, desired map[string]any }

// apply merges the patch into e (an unpublished copy) at time now.
func (p *PreparedPatch) apply(e *entry, now int64) (patchChanges, error) {
	tags, desired := p.tags, p.desired
	var c patchChanges
	if len(tags) == 0 && len(desired) == 0 {
		return c, nil // nothing to write: versions stay (the hub answers with the twin)
	}
	e.tw.etag++
	if len(tags) > 0 {
		nt := mergeMembers(e.tw.tags, tags, 0, 0)
		if err := checkSize(sizeTags, hubapi.MaxTagsBytes, e.tw.tags, nt); err != nil {
			return c, err
		}
		e.tw.tags = nt
		e.tw.tagsV++
		c.tags = tags
	}
	if len(desired) > 0 {
		nd := mergeMembers(e.tw.desired, desired, now, e.tw.desiredV+1)
		if err := checkSize(sizeDesired, hubapi.MaxPropertiesBytes, e.tw.desired, nd); err != nil {
			return c, err
		}
		e.tw.desiredV++
		e.tw.desired, e.tw.desiredAt = nd, now
		c.desired = desired
	}
	return c, nil
}

// notify calls OnDesired and OnTags for a device twin's write.
func (r *Registry) notify(e *entry, c patchChanges) {
	if c.desired != nil && r.opts.OnDesired != nil {
		r.opts.OnDesired(e.dev.DeviceID, deepCopyMap(c.desired), e.tw.desiredV)
	}
	if c.tags != nil && r.opts.OnTags != nil {
		r.opts.OnTags(e.dev.DeviceID, deepCopyMap(c.tags), e.tw.tagsV)
	}
}

// ApplyPatches is ApplyPatch for several devices at once, as a twin job applies its patch
// (writeMany). errs[i] is deviceIDs[i]'s outcome.
func (r *Registry) ApplyPatches(deviceIDs []string, p *PreparedPatch) []error {
	return r.writeMany(deviceIDs, make([]error, len(deviceIDs)),
		func(_ int, e *entry, now int64) (patchChanges, error) { return p.apply(e, now) },
		func(i int) error { _, err := r.applyPatch(deviceIDs[i], "", p, "*"); return err })
}

// PatchReportedBatch is PatchReported for several devices at once, as the simulated fleet
// reports its echoes (writeMany). errs[i] is deviceIDs[i]'s outcome.
func (r *Registry) PatchReportedBatch(deviceIDs []string, patches []map[string]any) []error {
	errs := make([]error, len(deviceIDs))
	prepared := make([]map[string]any, len(deviceIDs))
	for i, patch := range patches {
		prepared[i], errs[i] = prepareReported(patch)
	}
	return r.writeMany(deviceIDs, errs,
		func(i int, e *entry, now int64) (patchChanges, error) {
			return patchChanges{}, mergeReported(e, prepared[i], now)
		},
		func(i int) error { _, err := r.PatchReported(deviceIDs[i], patches[i]); return err })
}

// writeMany writes several device twins at once: change is applied to a copy of each twin
// outside the registry's mutex, which is then taken once to publish them all, and one commit
// record carries them, so that many writers do not queue for the mutex one twin at a time.
// A device with errs[i] set on entry is skipped; a twin written meanwhile (rare) is written
// again alone (alone). It returns errs with each device's outcome.
func (r *Registry) writeMany(ids []string, errs []error, change func(i int, e *entry, now int64) (patchChanges, error), alone func(i int) error) []error {
	olds := make([]*entry, len(ids))
	r.mu.RLock()
	for i, id := range ids {
		if errs[i] == nil {
			olds[i], errs[i] = r.lookupLocked(id, "")
		}
	}
	r.mu.RUnlock()
	now := r.nowNanos()
	keys := make([]twinKey, len(ids))
	news := make([]*entry, len(ids))
	changes := make([]patchChanges, len(ids))
	for i, old := range olds {
		keys[i].deviceID = ids[i]
		if errs[i] == nil {
			e := old.clone()
			if changes[i], errs[i] = change(i, e, now); errs[i] == nil {
				news[i] = e
			}
		}
	}
	stale, commitErr := r.publishCurrent(keys, olds, news)
	for i := range ids {
		switch {
		case stale[i]:
			errs[i] = alone(i)
		case errs[i] == nil && commitErr != nil:
			errs[i] = commitErr
		case errs[i] == nil:
			r.notify(news[i], changes[i])
		}
	}
	return errs
}

// ReplaceTwin replaces tags and desired properties (PUT /twins/{id}); an absent section
// becomes empty and nulls inside the body mean "absent".
func (r *Registry) ReplaceTwin(deviceID string, twin hubapi.TwinPatch, ifMatch string) (map[string]any, error) {
	return r.replaceTwin(deviceID, "", twin, ifMatch)
}

func (r *Registry) replaceTwin(deviceID, moduleID string, twin hubapi.TwinPatch, ifMatch string) (map[string]any, error) {
	tags, desired, err := patchSections(twin)
	if err != nil {
		return nil, err
	}
	tags, desired = stripNulls(tags), stripNulls(desired)
	if tags == nil {
		tags = map[string]any{}
	}
	if desired == nil {
		desired = map[string]any{}
	}
	e, err := r.twinWrite(deviceID, moduleID, ifMatch, func(e *entry, now int64) error {
		nt := membersOf(tags, 0, 0, nil)
		if err := checkSize(sizeTags, hubapi.MaxTagsBytes, e.tw.tags, nt); err != nil {
			return err
		}
		// The replaced desired section is the old one merge-patched with the difference, so
		// that $metadata moves only where a value changed.
		nd := mergeMembers(e.tw.desired, diffPatch(valuesMap(e.tw.desired), desired), now, e.tw.desiredV+1)
		if err := checkSize(sizeDesired, hubapi.MaxPropertiesBytes, e.tw.desired, nd); err != nil {
			return err
		}
		e.tw.etag++
		e.tw.tagsV++
		e.tw.tags = nt
		e.tw.desiredV++
		e.tw.desired, e.tw.desiredAt = nd, now
		return nil
	})
	if err != nil {
		return nil, err
	}
	if moduleID == "" && r.opts.OnDesired != nil {
		r.opts.OnDesired(deviceID, deepCopyMap(desired), e.tw.desiredV)
	}
	if moduleID == "" && r.opts.OnTags != nil {
		r.opts.OnTags(deviceID, deepCopyMap(tags), e.tw.tagsV)
	}
	return e.Map(), nil
}

// PatchReported merge-patches reported properties (the device side) and returns the new
// reported $version. Keys starting with '$' are rejected (400004), as the hub does, and the
// other twin limits apply (checkKeys, checkSize).
func (r *Registry) PatchReported(deviceID string, patch map[string]any) (int64, error) {
	return r.patchReported(deviceID, "", patch)
}

func (r *Registry) patchReported(deviceID, moduleID string, patch map[string]any) (int64, error) {
	p, err := prepareReported(patch)
	if err != nil {
		return 0, err
	}
	e, err := r.twinWrite(deviceID, moduleID, "", func(e *entry, now int64) error { return mergeReported(e, p, now) })
	if err != nil {
		return 0, err
	}
	return e.tw.reportedV, nil
}

// prepareReported checks and normalises a device's reported patch.
func prepareReported(patch map[string]any) (map[string]any, error) {
	p, err := normalizeMap(patch)
	if err != nil {
		return nil, patchError("properties.reported", err)
	}
	if err := checkKeys("properties.reported", p); err != nil {
		return nil, err
	}
	return p, nil
}

// mergeReported merges a prepared reported patch into e (an unpublished copy) at time now.
func mergeReported(e *entry, p map[string]any, now int64) error {
	nr := mergeMembers(e.tw.reported, p, now, 0)
	if err := checkSize(sizeReported, hubapi.MaxPropertiesBytes, e.tw.reported, nr); err != nil {
		return err
	}
	e.tw.reportedV++
	e.tw.reported, e.tw.reportedAt = nr, now
	return nil
}

// DesiredAndReported returns a copy of the desired and reported properties with $version and
// $metadata, as a device's twin GET returns them (for the device-side transports).
func (r *Registry) DesiredAndReported(deviceID string) (desired, reported map[string]any, err error) {
	e := r.get(deviceID)
	if e == nil {
		return nil, nil, notFound(deviceID)
	}
	return (*desiredView)(e).Map(), (*reportedView)(e).Map(), nil
}
