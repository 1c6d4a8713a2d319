package registry

import (
	"encoding/json"
	"sync/atomic"

	"github.com/iotplan/iotplan/internal/jsonappend"
)

// twin is a twin's state in memory (the store keeps it as twinState).
type twin struct {
	etag, tagsV, desiredV, reportedV int64
	tags, desired, reported          []member
	desiredAt, reportedAt            int64 // each section's own $lastUpdated (Unix ns)
}

// volatile is a device's connection state: it changes on every connect, disconnect and
// message, so it lives outside the immutable entry (one per device, shared by the entry's
// successive versions) and changes without a new document or a store write.
type volatile struct {
	connected atomic.Bool
	connAt    atomic.Int64 // connectionStateUpdatedTime, Unix ns; 0 = never
	activeAt  atomic.Int64 // lastActivityTime
	dirty     atomic.Bool  // changed since Flush last wrote it
	// wasConnected is only used while loading: the stored state said Connected.
	wasConnected bool
}

// device returns the identity with its volatile fields filled in.
func (e *entry) device() Device {
	d := e.dev
	d.ConnectionState = e.connectionState()
	d.ConnectionStateUpdatedTime = formatNanos(e.vol.connAt.Load())
	d.LastActivityTime = formatNanos(e.vol.activeAt.Load())
	return d
}

func (e *entry) connectionState() string {
	if e.vol.connected.Load() {
		return "Connected"
	}
	return "Disconnected"
}

// Values shared by every twin document (immutable). The strings are boxed once, so that a
// query reading status or connectionState over a million twins allocates nothing
// (BenchmarkQueryOverTwins: two allocations a twin before).
var (
	boxedEnabled      any = "enabled"
	boxedDisabled     any = "disabled"
	boxedConnected    any = "Connected"
	boxedDisconnected any = "Disconnected"

	x509Null   = map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}
	capsNoEdge = map[string]any{"iotEdge": false}
	capsEdge   = map[string]any{"iotEdge": true}
)

// An entry is its twin document for queries and jobs: it implements query.Object, reading each
// member from the compact form when asked (no map per twin). The members are those of GET
// /twins/{id} (Map).
func (e *entry) Field(name string) (any, bool) {
	switch name {
	case "deviceId":
		return e.dev.DeviceID, true
	case "moduleId":
		if e.mod != nil {
			return e.mod.ModuleID, true
		}
		return nil, false
	case "modelId":
		return "", true
	case "etag":
		return etagString(e.tw.etag), true
	case "deviceEtag":
		return e.dev.ETag, true
	case "version":
		return float64(e.tw.desiredV + e.tw.reportedV + e.tw.tagsV), true
	case "status":
		switch e.dev.Status {
		case "enabled":
			return boxedEnabled, true
		case "disabled":
			return boxedDisabled, true
		}
		return e.dev.Status, true
	case "statusReason":
		if e.dev.StatusReason != nil {
			return *e.dev.StatusReason, true
		}
		return nil, false
	case "statusUpdateTime":
		return e.dev.StatusUpdatedTime, true
	case "connectionState":
		if e.vol.connected.Load() {
			return boxedConnected, true
		}
		return boxedDisconnected, true
	case "lastActivityTime":
		return formatNanos(e.vol.activeAt.Load()), true
	case "cloudToDeviceMessageCount":
		return float64(e.dev.CloudToDeviceMessageCount), true
	case "authenticationType":
		return "sas", true
	case "x509Thumbprint":
		return x509Null, true
	case "capabilities":
		if e.mod != nil {
			return nil, false // capabilities belong to devices [inferred from the swagger Twin model]
		}
		if e.dev.Capabilities.IotEdge {
			return capsEdge, true
		}
		return capsNoEdge, true
	case "tags":
		return (*tagsView)(e), true
	case "properties":
		return (*propsView)(e), true
	case "configurations":
		if len(e.cfg) > 0 {
			return e.cfg, true
		}
	}
	return nil, false
}

// Map renders the twin document as GET /twins/{id} returns it: a new map the caller owns.
func (e *entry) Map() map[string]any {
	doc := map[string]any{
		"deviceId":                  e.dev.DeviceID,
		"modelId":                   "",
		"etag":                      etagString(e.tw.etag),
		"deviceEtag":                e.dev.ETag,
		"version":                   float64(e.tw.desiredV + e.tw.reportedV + e.tw.tagsV),
		"status":                    e.dev.Status,
		"statusUpdateTime":          e.dev.StatusUpdatedTime,
		"connectionState":           e.connectionState(),
		"lastActivityTime":          formatNanos(e.vol.activeAt.Load()),
		"cloudToDeviceMessageCount": float64(e.dev.CloudToDeviceMessageCount),
		"authenticationType":        "sas",
		"x509Thumbprint":            map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil},
		"tags":                      valuesMap(e.tw.tags),
		"properties":                (*propsView)(e).Map(),
	}
	if e.mod != nil {
		doc["moduleId"] = e.mod.ModuleID
	} else {
		doc["capabilities"] = map[string]any{"iotEdge": e.dev.Capabilities.IotEdge}
	}
	if e.dev.StatusReason != nil {
		doc["statusReason"] = *e.dev.StatusReason
	}
	if len(e.cfg) > 0 {
		doc["configurations"] = CloneJSON(e.cfg)
	}
	return doc
}

// MarshalJSON writes the twin document (rows of SELECT * hold entries).
func (e *entry) MarshalJSON() ([]byte, error) { return json.Marshal(e.Map()) }

// tagsView, propsView and the section views are an entry seen as one of its document's
// objects: pointer conversions, so that a query reading tags.x allocates nothing.
type (
	tagsView     entry
	propsView    entry
	desiredView  entry
	reportedView entry
)

func (v *tagsView) Field(name string) (any, bool) { return field(v.tw.tags, name) }
func (v *tagsView) Map() map[string]any           { return valuesMap(v.tw.tags) }
func (v *tagsView) MarshalJSON() ([]byte, error)  { return appendValues(nil, v.tw.tags), nil }

func (v *propsView) Field(name string) (any, bool) {
	switch name {
	case "desired":
		return (*desiredView)(v), true
	case "reported":
		return (*reportedView)(v), true
	}
	return nil, false
}

func (v *propsView) Map() map[string]any {
	return map[string]any{"desired": (*desiredView)(v).Map(), "reported": (*reportedView)(v).Map()}
}

func (v *propsView) MarshalJSON() ([]byte, error) { return json.Marshal(v.Map()) }

func (v *desiredView) Field(name string) (any, bool) {
	return sectionField(v.tw.desired, name, v.tw.desiredV, v.tw.desiredAt, true)
}
func (v *desiredView) Map() map[string]any {
	return sectionMap(v.tw.desired, v.tw.desiredV, v.tw.desiredAt, true)
}
func (v *desiredView) MarshalJSON() ([]byte, error) { return json.Marshal(v.Map()) }

func (v *reportedView) Field(name string) (any, bool) {
	return sectionField(v.tw.reported, name, v.tw.reportedV, v.tw.reportedAt, false)
}
func (v *reportedView) Map() map[string]any {
	return sectionMap(v.tw.reported, v.tw.reportedV, v.tw.reportedAt, false)
}
func (v *reportedView) MarshalJSON() ([]byte, error) { return json.Marshal(v.Map()) }

// sectionField reads a member of properties.desired or .reported, with $version and $metadata.
// version is also the root's $lastUpdatedVersion: every desired write moves both.
func sectionField(ms []member, name string, version, at int64, withVer bool) (any, bool) {
	switch name {
	case "$version":
		return float64(version), true
	case "$metadata":
		return &metaView{ms: ms, at: at, ver: version, withVer: withVer}, true
	}
	return field(ms, name)
}

func sectionMap(ms []member, version, at int64, withVer bool) map[string]any {
	m := valuesMap(ms)
	m["$metadata"] = metaMap(ms, at, version, withVer)
	m["$version"] = float64(version)
	return m
}

// metaView is a $metadata node read by a query (properties.reported.$metadata.temp.$lastUpdated).
type metaView struct {
	ms      []member
	at, ver int64
	withVer bool
}

func (v *metaView) Field(name string) (any, bool) {
	switch name {
	case metaLastUpdated:
		return formatNanos(v.at), true
	case metaLastUpdatedVersion:
		if v.withVer {
			return float64(v.ver), true
		}
		return nil, false
	}
	i, ok := lookup(v.ms, name)
	if !ok {
		return nil, false
	}
	mb := &v.ms[i]
	var sub []member
	if o, isObj := mb.val.(*object); isObj {
		sub = o.ms
	}
	return &metaView{ms: sub, at: mb.at, ver: mb.ver, withVer: v.withVer}, true
}

func (v *metaView) Map() map[string]any          { return metaMap(v.ms, v.at, v.ver, v.withVer) }
func (v *metaView) MarshalJSON() ([]byte, error) { return json.Marshal(v.Map()) }

// record is the twin as the store keeps it (maps; modules' records embed it).
func (tw *twin) record() twinState {
	return twinState{
		ETag: tw.etag, TagsVersion: tw.tagsV, DesiredVersion: tw.desiredV, ReportedVersion: tw.reportedV,
		Tags: valuesMap(tw.tags), Desired: valuesMap(tw.desired), Reported: valuesMap(tw.reported),
		DesiredMeta:  metaMap(tw.desired, tw.desiredAt, tw.desiredV, true),
		ReportedMeta: metaMap(tw.reported, tw.reportedAt, tw.reportedV, false),
	}
}

// appendRecord writes tw as the JSON of its twinState without building the maps (the hot
// path of every twin write).
func (tw *twin) appendRecord(b []byte) []byte {
	b = append(b, `{"etag":`...)
	b = jsonappend.Number(b, float64(tw.etag))
	b = append(b, `,"tagsVersion":`...)
	b = jsonappend.Number(b, float64(tw.tagsV))
	b = append(b, `,"desiredVersion":`...)
	b = jsonappend.Number(b, float64(tw.desiredV))
	b = append(b, `,"reportedVersion":`...)
	b = jsonappend.Number(b, float64(tw.reportedV))
	b = append(b, `,"tags":`...)
	b = appendValues(b, tw.tags)
	b = append(b, `,"desired":`...)
	b = appendValues(b, tw.desired)
	b = append(b, `,"reported":`...)
	b = appendValues(b, tw.reported)
	b = append(b, `,"desiredMeta":`...)
	b = appendMeta(b, tw.desired, tw.desiredAt, tw.desiredV, true)
	b = append(b, `,"reportedMeta":`...)
	b = appendMeta(b, tw.reported, tw.reportedAt, tw.reportedV, false)
	return append(b, '}')
}

// twinOf converts a stored twinState.
func twinOf(rec *twinState, times timeCache) twin {
	return twin{
		etag: rec.ETag, tagsV: rec.TagsVersion, desiredV: rec.DesiredVersion, reportedV: rec.ReportedVersion,
		tags:      membersFromStore(rec.Tags, nil, times),
		desired:   membersFromStore(rec.Desired, rec.DesiredMeta, times),
		reported:  membersFromStore(rec.Reported, rec.ReportedMeta, times),
		desiredAt: times.nanos(rec.DesiredMeta[metaLastUpdated]), reportedAt: times.nanos(rec.ReportedMeta[metaLastUpdated]),
	}
}
