package registry

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// TimeFormat is how the hub writes timestamps: UTC, 7 fractional digits, 'Z' (as Azure does;
// amenzhinsky's MicrosoftTime needs the 'Z' or no zone at all).
const TimeFormat = "2006-01-02T15:04:05.0000000Z"

// zeroTime is what the hub shows for "never".
const zeroTime = "0001-01-01T00:00:00Z"

// FormatTime formats t the hub's way; the zero time is "0001-01-01T00:00:00Z".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format(TimeFormat)
}

// entry is one device (or module) in memory. It is replaced, never mutated, once published
// (copy-on-write), except for its volatile connection state, which vol holds. It is also the
// twin's document for queries (document.go).
type entry struct {
	dev  Device // for a module: its identity's common fields (DeviceID is the parent device); the volatile fields are in vol
	devN int64  // identity etag counter
	mod  *moduleInfo
	vol  *volatile
	tw   twin
	cfg  map[string]any // the twin's "configurations" member (ADM statuses); volatile
}

// moduleInfo marks a module entry: its id and managedBy.
type moduleInfo struct {
	ModuleID  string
	ManagedBy string
}

// clone returns an unpublished copy of a published entry, to be changed, persisted and
// published in place of e. Member slices are shared: writes replace them, never change them.
func (e *entry) clone() *entry {
	n := *e
	return &n
}

// Options configure a Registry.
type Options struct {
	Now func() time.Time // nil = time.Now
	// OnDesired is called after every desired change (REST PATCH/PUT or job), outside locks;
	// patch = what changed in the same form as the update (merge patch, or the full desired
	// properties for a replace), version = the new desired $version.
	OnDesired func(deviceID string, patch map[string]any, version int64)
	// OnTags is called after every tags change of a device twin (REST PATCH/PUT or job), outside
	// locks, like OnDesired: patch in the same form as the update, version = the twin's tags
	// version (the count of its tag writes).
	OnTags func(deviceID string, patch map[string]any, version int64)
}

// Registry holds the devices and twins of one hub.
type Registry struct {
	db     *bbolt.DB
	commit *committer // every store write goes through it (commit.go)
	opts   Options

	mu   sync.RWMutex
	byID map[string]*entry
	// order: the devices sorted by id, the iteration order of ForEachTwin and ListDevices
	// (a scan reads it instead of looking each id up in byID).
	order []*entry
	// Modules, keyed moduleKey(deviceID, moduleID); modKeys sorted (module ids cannot
	// contain '/', so a device's modules are contiguous).
	mods    map[string]*entry
	modKeys []string
	// seedIntern shares keys and values across Import batches (members.go); seedMu guards it.
	seedMu     sync.Mutex
	seedIntern *interner
	// gen counts writes of identities and twins (not volatile state): Generation.
	gen atomic.Uint64
}

// nowNanos is the time of a twin write, for $metadata.
func (r *Registry) nowNanos() int64 { return r.opts.Now().UnixNano() }

// Has reports whether a device is registered.
func (r *Registry) Has(deviceID string) bool { return r.get(deviceID) != nil }

// DeviceCount is the number of registered devices.
func (r *Registry) DeviceCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.order)
}

// forEachChunk is how many documents ForEachTwin collects per read lock, so that a scan of a
// large fleet never holds the lock for long and writers interleave.
const forEachChunk = 512

// ForEachTwin calls fn with every twin document in device-id order until fn returns false.
// doc is a query.Object (read it with query.Field, or Map for a copy). fn may keep it:
// documents are replaced, never changed, so a kept reference is a consistent snapshot of that
// twin, except for its connection state and lastActivityTime, which are live. No lock
// is held while fn runs; a scan concurrent with writes sees each twin either before or after
// a write, and devices created during the scan may or may not be visited.
func (r *Registry) ForEachTwin(fn func(doc any) bool) {
	var batch []*entry
	after := ""
	first := true
	for {
		batch = batch[:0]
		r.mu.RLock()
		i := 0
		if !first {
			var found bool
			if i, found = r.position(after); found {
				i++
			}
		}
		for ; i < len(r.order) && len(batch) < forEachChunk; i++ {
			batch = append(batch, r.order[i])
			after = r.order[i].dev.DeviceID
		}
		r.mu.RUnlock()
		first = false
		if len(batch) == 0 {
			return
		}
		for _, d := range batch {
			if !fn(d) {
				return
			}
		}
		if len(batch) < forEachChunk {
			return
		}
	}
}

// publish replaces e's entry in memory; callers hold r.mu.
func (r *Registry) publish(e *entry) {
	r.gen.Add(1)
	if e.mod != nil {
		k := moduleKey(e.dev.DeviceID, e.mod.ModuleID)
		if _, ok := r.mods[k]; !ok {
			i, _ := slices.BinarySearch(r.modKeys, k)
			r.modKeys = slices.Insert(r.modKeys, i, k)
		}
		r.mods[k] = e
		return
	}
	r.put(e)
}

// put stores a device entry, new or in place of its previous version, in byID and order;
// callers hold r.mu (write).
func (r *Registry) put(e *entry) {
	i, found := r.position(e.dev.DeviceID)
	if found {
		r.order[i] = e
	} else {
		r.order = slices.Insert(r.order, i, e)
	}
	r.byID[e.dev.DeviceID] = e
}

// position finds a device id in order (a binary search); callers hold r.mu.
func (r *Registry) position(id string) (int, bool) {
	return slices.BinarySearchFunc(r.order, id, func(e *entry, id string) int { return strings.Compare(e.dev.DeviceID, id) })
}
