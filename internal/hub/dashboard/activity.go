package dashboard

import (
	"slices"
	"sync"
	"time"
	"unicode/utf8"
)

// ActivityCapacity is how many events Activity keeps: the activity page shows the newest,
// and a hub running a job over a million devices overwrites the ring many times a second
// without holding more.
const ActivityCapacity = 1000

// Event kinds and sources.
const (
	KindMethod   = "method"   // a direct method was invoked
	KindDesired  = "desired"  // desired properties changed (REST, a job, ADM)
	KindReported = "reported" // a device patched its reported properties
	KindTags     = "tags"     // tags changed (REST or a job)

	SourceREST    = "rest"    // the service REST API
	SourceJob     = "job"     // a job of the jobs engine
	SourceService = "service" // a service-side write (REST, job or ADM; the registry does not say which)
	SourceDevice  = "device"  // a device (MQTT, or a simulated device in-process)
)

// Bounds of what an event holds: ids and names are clipped, values are never recorded
// (a desired property may hold anything; the page shows which keys changed, not to what).
const (
	maxEventKeys = 8
	maxEventText = 128 // bytes of a device id, method name, key or error name
)

// Event is one recorded call or change, as the activity page shows it.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"`
	Source   string    `json:"source"`
	DeviceID string    `json:"deviceId"`
	// Method calls.
	Method     string `json:"method,omitempty"`
	Status     int    `json:"status,omitempty"`     // the device's answer
	Error      string `json:"error,omitempty"`      // the hub's error name when no answer came
	DurationMs int64  `json:"durationMs,omitempty"` // how long the call took
	// Twin changes: the top-level keys of the patch (at most maxEventKeys, sorted), how many
	// there were, and the section's new $version.
	Keys    []string `json:"keys,omitempty"`
	KeyN    int      `json:"keyCount,omitempty"`
	Version int64    `json:"version,omitempty"`
}

// Activity is a bounded record of recent direct-method calls and twin changes. A nil
// *Activity records nothing (a hub without a dashboard). Safe for concurrent use.
type Activity struct {
	now func() time.Time

	mu     sync.Mutex
	ring   [ActivityCapacity]Event
	next   uint64 // Seq of the next event; the ring holds Seqs max(1, next-cap) .. next-1
	totals map[string]uint64
}

// NewActivity returns an empty record; now = nil is time.Now.
func NewActivity(now func() time.Time) *Activity {
	if now == nil {
		now = time.Now
	}
	return &Activity{now: now, next: 1, totals: map[string]uint64{}}
}

// Method records a direct-method call: the device's status, or the hub's error name when
// it did not answer, and how long the call took.
func (a *Activity) Method(source, deviceID, method string, status int, errName string, took time.Duration) {
	if a == nil {
		return
	}
	a.add(Event{Kind: KindMethod, Source: source, DeviceID: clip(deviceID), Method: clip(method),
		Status: status, Error: clip(errName), DurationMs: took.Milliseconds()})
}

// Twin records a change of a twin section (KindDesired, KindReported or KindTags): patch is
// the merge patch as the writer sent it; only its top-level keys are kept. version is the
// section's $version (for tags, the count of the twin's tag writes).
func (a *Activity) Twin(kind, source, deviceID string, patch map[string]any, version int64) {
	if a == nil {
		return
	}
	keys := make([]string, 0, min(len(patch), maxEventKeys))
	for k := range patch {
		if len(keys) == maxEventKeys {
			break
		}
		keys = append(keys, clip(k))
	}
	slices.Sort(keys)
	a.add(Event{Kind: kind, Source: source, DeviceID: clip(deviceID), Keys: keys, KeyN: len(patch), Version: version})
}

func (a *Activity) add(e Event) {
	e.Time = a.now()
	a.mu.Lock()
	e.Seq = a.next
	a.ring[e.Seq%ActivityCapacity] = e
	a.next++
	a.totals[e.Kind]++
	a.mu.Unlock()
}

// Since returns the events after Seq after, oldest first, at most max (the newest max of
// them when there are more); skipped counts the events after `after` that are not returned
// (overwritten in the ring, or beyond max). last is the Seq of the newest event (0 = none
// yet): pass it as after next time.
func (a *Activity) Since(after uint64, max int) (events []Event, skipped, last uint64) {
	if a == nil || max <= 0 {
		return nil, 0, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	last = a.next - 1
	if after >= last {
		return nil, 0, last
	}
	first := after + 1
	if oldest := a.next - min(a.next-1, ActivityCapacity); first < oldest {
		first = oldest
	}
	if last-first+1 > uint64(max) {
		first = last - uint64(max) + 1
	}
	skipped = first - (after + 1)
	events = make([]Event, 0, last-first+1)
	for s := first; s <= last; s++ {
		events = append(events, a.ring[s%ActivityCapacity])
	}
	return events, skipped, last
}

// Totals counts the events of each kind ever recorded.
func (a *Activity) Totals() map[string]uint64 {
	out := map[string]uint64{KindMethod: 0, KindDesired: 0, KindReported: 0, KindTags: 0}
	if a == nil {
		return out
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, v := range a.totals {
		out[k] = v
	}
	return out
}

// clip bounds text from devices and clients to maxEventText bytes, on a rune boundary.
func clip(s string) string {
	if len(s) <= maxEventText {
		return s
	}
	cut := maxEventText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
