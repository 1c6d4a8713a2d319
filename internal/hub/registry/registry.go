package registry

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

var (
	bucketDevices = []byte("devices")
	bucketTwins   = []byte("twins")
	bucketMeta    = []byte("meta")
	bucketModules = []byte("modules")
	keySchema     = []byte("schema")
)

const schemaVersion = "1"

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

// Device is a device identity as GET/PUT /devices/{id} carry it.
type Device struct {
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	ETag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	Status                     string         `json:"status"`
	StatusReason               *string        `json:"statusReason"`
	ConnectionStateUpdatedTime string         `json:"connectionStateUpdatedTime"`
	StatusUpdatedTime          string         `json:"statusUpdatedTime"`
	LastActivityTime           string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
	Capabilities               Capabilities   `json:"capabilities"`
}

// Authentication is a device's credentials. Only "sas" is supported by the local hub.
type Authentication struct {
	SymmetricKey   SymmetricKey   `json:"symmetricKey"`
	X509Thumbprint X509Thumbprint `json:"x509Thumbprint"`
	Type           string         `json:"type"`
}

// SymmetricKey holds a device's two base64 SAS keys.
type SymmetricKey struct {
	PrimaryKey   string `json:"primaryKey"`
	SecondaryKey string `json:"secondaryKey"`
}

// X509Thumbprint is always null/null on the local hub.
type X509Thumbprint struct {
	PrimaryThumbprint   *string `json:"primaryThumbprint"`
	SecondaryThumbprint *string `json:"secondaryThumbprint"`
}

// Capabilities of a device.
type Capabilities struct {
	IotEdge bool `json:"iotEdge"`
}

// twinState is the twin as the store keeps it ("twins" bucket, and inside module records);
// in memory it is a twin (document.go).
type twinState struct {
	ETag            int64          `json:"etag"`
	TagsVersion     int64          `json:"tagsVersion"`
	DesiredVersion  int64          `json:"desiredVersion"`
	ReportedVersion int64          `json:"reportedVersion"`
	Tags            map[string]any `json:"tags"`
	Desired         map[string]any `json:"desired"`
	Reported        map[string]any `json:"reported"`
	DesiredMeta     map[string]any `json:"desiredMeta"`
	ReportedMeta    map[string]any `json:"reportedMeta"`
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
}

// Registry holds the devices and twins of one hub.
type Registry struct {
	db     *bbolt.DB
	commit *committer // every store write goes through it (commit.go)
	opts   Options

	mu   sync.RWMutex
	byID map[string]*entry
	ids  []string // sorted; the iteration order of ForEachTwin and ListDevices
	// Modules, keyed moduleKey(deviceID, moduleID); modKeys sorted (module ids cannot
	// contain '/', so a device's modules are contiguous).
	mods    map[string]*entry
	modKeys []string
	// gen counts writes of identities and twins (not volatile state): Generation.
	gen atomic.Uint64
}

// Open loads the registry from db, creating its buckets on first use.
func Open(db *bbolt.DB, opts Options) (*Registry, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Registry{db: db, commit: newCommitter(db), opts: opts, byID: map[string]*entry{}, mods: map[string]*entry{}}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketTwins, bucketMeta, bucketModules} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(schemaVersion))
		case string(v) != schemaVersion:
			return fmt.Errorf("registry: data was written by an incompatible version (schema %s, want %s)", v, schemaVersion)
		}
		return nil
	})
	if err == nil {
		err = db.View(r.load)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// stored is one device's records, read in one pass over both buckets (their keys are the
// same ids, in the same order); the slices point into the store's memory map and are valid
// while the transaction is open.
type stored struct{ key, device, twin []byte }

// load reads every device and module into memory. Decoding is spread over the machine's
// cores: it is most of a restart's time (a million devices, BENCHMARKS.md).
func (r *Registry) load(tx *bbolt.Tx) error {
	var recs []stored
	tc := tx.Bucket(bucketTwins).Cursor()
	tk, tv := tc.First()
	dc := tx.Bucket(bucketDevices).Cursor()
	for k, v := dc.First(); k != nil; k, v = dc.Next() {
		for tk != nil && string(tk) < string(k) {
			tk, tv = tc.Next()
		}
		if tk == nil || string(tk) != string(k) {
			return fmt.Errorf("registry: device %q has no twin", k)
		}
		recs = append(recs, stored{k, v, tv})
	}
	entries := make([]*entry, len(recs))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(recs)/10_000))
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(recs)/workers, (w+1)*len(recs)/workers
		wg.Go(func() { errs[w] = r.decodeRange(recs[lo:hi], entries[lo:hi]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.ids = make([]string, len(entries)) // bbolt iterates keys in byte order = sorted
	r.byID = make(map[string]*entry, len(entries))
	for i, e := range entries {
		r.ids[i] = e.dev.DeviceID
		r.byID[e.dev.DeviceID] = e
	}
	times := timeCache{}
	return tx.Bucket(bucketModules).ForEach(func(k, v []byte) error {
		e, err := decodeModule(v, times)
		if err != nil {
			return fmt.Errorf("registry: module %q: %w", k, err)
		}
		r.mods[string(k)] = e
		r.modKeys = append(r.modKeys, string(k))
		return nil
	})
}

func (r *Registry) decodeRange(recs []stored, out []*entry) error {
	times, d := timeCache{}, newDecoder()
	for i, s := range recs {
		rec, err := decodeDevice(s.device, d)
		if err != nil {
			return fmt.Errorf("registry: device %q: %w", s.key, err)
		}
		tw, err := decodeTwin(s.twin, d, times)
		if err != nil {
			return fmt.Errorf("registry: twin %q: %w", s.key, err)
		}
		vol := volatileOf(rec.Device, times, r.opts.Now)
		internDevice(&rec.Device)
		out[i] = &entry{dev: rec.Device, devN: rec.ETagN, tw: tw, vol: vol}
	}
	return nil
}

// internDevice drops a loaded identity's volatile fields (vol holds them) and shares the
// strings every device has the same: a million decoded "enabled" and "sas" are one each.
func internDevice(d *Device) {
	d.ConnectionState, d.ConnectionStateUpdatedTime, d.LastActivityTime = "", "", ""
	for _, c := range []string{"enabled", "disabled"} {
		if d.Status == c {
			d.Status = c
		}
	}
	if d.StatusUpdatedTime == zeroTime {
		d.StatusUpdatedTime = zeroTime
	}
	if d.Authentication.Type == "sas" {
		d.Authentication.Type = "sas"
	}
}

// volatileOf starts a loaded device's volatile state. No device session survives a restart
// (SetConnectionState keeps connection state in memory only), so a device stored Connected
// is Disconnected from now on; its lastActivityTime is kept. The identity keeps none of it.
func volatileOf(d Device, times timeCache, now func() time.Time) *volatile {
	v := &volatile{}
	v.connAt.Store(times.nanos(d.ConnectionStateUpdatedTime))
	if d.ConnectionState == "Connected" {
		v.connAt.Store(now().UnixNano())
	}
	v.activeAt.Store(times.nanos(d.LastActivityTime))
	return v
}

// deviceRecord is the persisted identity ("devices" bucket).
type deviceRecord struct {
	Device
	ETagN int64 `json:"etagN"`
}

func (r *Registry) now() string { return FormatTime(r.opts.Now()) }

// nowNanos is the time of a twin write, for $metadata.
func (r *Registry) nowNanos() int64 { return r.opts.Now().UnixNano() }

// ValidateDeviceID checks an id the way the hub does: 1..128 ASCII characters from
// letters, digits and - . % _ * ? ! ( ) , : = @ $ '.
func ValidateDeviceID(id string) error {
	if id == "" || len(id) > 128 {
		return huberr.New(huberr.ArgumentInvalid, "The device id must be 1 to 128 characters long.")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-.%_*?!(),:=@$'", c) >= 0 {
			continue
		}
		return huberr.New(huberr.ArgumentInvalid, "The device id %q contains the character %q, which is not allowed (letters, digits and - . %% _ * ? ! ( ) , : = @ $ ' are).", id, string(rune(c)))
	}
	return nil
}

func notFound(id string) error {
	return huberr.New(huberr.DeviceNotFound, "Device %s not registered.", clipID(id))
}

// clipID keeps an id a request gave (up to 128 characters when valid) from filling a message.
func clipID(id string) string {
	const max = 160
	if len(id) <= max {
		return id
	}
	return id[:max] + fmt.Sprintf("…(%d bytes)", len(id))
}

func etagString(n int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return base64.StdEncoding.EncodeToString(b[:])
}

func deviceETag(n int64) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(n, 10)))
}

// NewKey returns a fresh random 32-byte SAS key, base64-encoded (as the hub generates).
func NewKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go ≥ 1.24)
	return base64.StdEncoding.EncodeToString(b)
}

func newGenerationID() string {
	// The hub's generation ids look like "638012345678901234": 18 decimal digits.
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("63%016d", binary.BigEndian.Uint64(b[:])%1e16)
}

// parseIfMatch strips one level of quotes and a weak prefix; "" and "*" mean unconditional.
func parseIfMatch(h string) string {
	h = strings.TrimSpace(h)
	h = strings.TrimPrefix(h, "W/")
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		h = h[1 : len(h)-1]
	}
	if h == "*" {
		return ""
	}
	return h
}

func preconditionFailed() error {
	return huberr.New(huberr.PreconditionFailed, "Precondition failed: the etag in If-Match does not match the current etag.")
}

// --- reads -------------------------------------------------------------------------------------

func (r *Registry) get(id string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

// Has reports whether a device is registered.
func (r *Registry) Has(deviceID string) bool { return r.get(deviceID) != nil }

// DeviceCount is the number of registered devices.
func (r *Registry) DeviceCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.ids)
}

// DeviceKeys returns a device's SAS keys.
func (r *Registry) DeviceKeys(deviceID string) (primary, secondary string, err error) {
	e := r.get(deviceID)
	if e == nil {
		return "", "", notFound(deviceID)
	}
	return e.dev.Authentication.SymmetricKey.PrimaryKey, e.dev.Authentication.SymmetricKey.SecondaryKey, nil
}

// GetDevice returns a device identity.
func (r *Registry) GetDevice(deviceID string) (Device, error) {
	e := r.get(deviceID)
	if e == nil {
		return Device{}, notFound(deviceID)
	}
	return e.device(), nil
}

// ListDevices returns up to max identities in id order (max ≤ 0: all).
func (r *Registry) ListDevices(max int) []Device {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := len(r.ids)
	if max > 0 && max < n {
		n = max
	}
	out := make([]Device, 0, n)
	for _, id := range r.ids[:n] {
		out = append(out, r.byID[id].device())
	}
	return out
}

// GetTwin returns a copy of the twin document, as GET /twins/{id} returns it.
func (r *Registry) GetTwin(deviceID string) (map[string]any, error) {
	e := r.get(deviceID)
	if e == nil {
		return nil, notFound(deviceID)
	}
	return e.Map(), nil
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
			i, _ = slices.BinarySearch(r.ids, after)
			if i < len(r.ids) && r.ids[i] == after {
				i++
			}
		}
		for ; i < len(r.ids) && len(batch) < forEachChunk; i++ {
			batch = append(batch, r.byID[r.ids[i]])
			after = r.ids[i]
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

// --- writes ------------------------------------------------------------------------------------

func putJSON(b *bbolt.Bucket, key string, v any) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), buf)
}

// persist writes the given entries durably, in one transaction; callers hold r.mu, which it
// keeps while it waits (twinWrite, the hot path, waits without it).
func (r *Registry) persist(es []*entry, withDevice, withTwin bool) error {
	write, err := records(es, withDevice, withTwin)
	if err == nil {
		err = r.commit.writeSync(write)
	}
	if err != nil {
		return storeError(err)
	}
	return nil
}

// records encodes entries now (they change once published) into a store write.
func records(es []*entry, withDevice, withTwin bool) (func(tx *bbolt.Tx) error, error) {
	type kv struct {
		bucket []byte
		key    string
		value  []byte
	}
	var puts []kv
	add := func(bucket []byte, key string, v any) error {
		b, err := json.Marshal(v)
		puts = append(puts, kv{bucket, key, b})
		return err
	}
	for _, e := range es {
		var err error
		switch {
		case e.mod != nil:
			err = add(bucketModules, moduleKey(e.dev.DeviceID, e.mod.ModuleID), moduleRecordOf(e))
		default:
			if withDevice {
				puts = append(puts, kv{bucketDevices, e.dev.DeviceID, appendDeviceRecord(nil, e.device(), e.devN)})
			}
			if err == nil && withTwin {
				puts = append(puts, kv{bucketTwins, e.dev.DeviceID, e.tw.appendBinary(nil)})
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return func(tx *bbolt.Tx) error {
		for _, p := range puts {
			if err := tx.Bucket(p.bucket).Put([]byte(p.key), p.value); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

func storeError(err error) error {
	var he *huberr.Error
	if errors.As(err, &he) {
		return he
	}
	return &huberr.Error{Code: huberr.ServerError, Msg: "The hub could not write its store: " + err.Error()}
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
	if _, ok := r.byID[e.dev.DeviceID]; !ok {
		i, _ := slices.BinarySearch(r.ids, e.dev.DeviceID)
		r.ids = slices.Insert(r.ids, i, e.dev.DeviceID)
	}
	r.byID[e.dev.DeviceID] = e
}

// newEntry makes the identity and empty twin of a new device (or module); at is the twin's
// creation time, its sections' first $lastUpdated.
func (r *Registry) newEntry(id, status string, primary, secondary string, at int64) (*entry, error) {
	if err := ValidateDeviceID(id); err != nil {
		return nil, err
	}
	switch status {
	case "":
		status = "enabled"
	case "enabled", "disabled":
	default:
		return nil, huberr.New(huberr.ArgumentInvalid, "Device status must be 'enabled' or 'disabled', not %q.", status)
	}
	if primary == "" {
		primary = NewKey()
	}
	if secondary == "" {
		secondary = NewKey()
	}
	for _, k := range []string{primary, secondary} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) < 16 || len(b) > 64 {
			return nil, huberr.New(huberr.ArgumentInvalid, "The device's symmetric keys must be base64 encodings of 16 to 64 bytes.")
		}
	}
	e := &entry{
		dev: Device{
			DeviceID:          id,
			GenerationID:      newGenerationID(),
			ETag:              deviceETag(1),
			Status:            status,
			StatusUpdatedTime: zeroTime,
			Authentication: Authentication{
				SymmetricKey: SymmetricKey{PrimaryKey: primary, SecondaryKey: secondary},
				Type:         "sas",
			},
		},
		devN: 1,
		vol:  &volatile{},
		tw:   twin{etag: 1, desiredV: 1, reportedV: 1, desiredAt: at, reportedAt: at},
	}
	return e, nil
}

// CreateOrUpdateDevice is PUT /devices/{id}. Without If-Match it creates the device (409001 if
// it exists); with If-Match ("*" or an etag) it updates an existing one (404001 if missing,
// 412001 on an etag mismatch). Writable fields: status, statusReason, the symmetric keys
// (empty = generate on create, keep on update) and capabilities.iotEdge.
func (r *Registry) CreateOrUpdateDevice(d Device, ifMatch string) (Device, error) {
	if d.Authentication.Type != "" && d.Authentication.Type != "sas" {
		return Device{}, huberr.New(huberr.ArgumentInvalid, "The local hub supports only authentication type 'sas', not %q.", d.Authentication.Type)
	}
	nowT := r.opts.Now()
	now := FormatTime(nowT)
	r.mu.Lock()
	old := r.byID[d.DeviceID]
	if strings.TrimSpace(ifMatch) == "" {
		if old != nil {
			r.mu.Unlock()
			return Device{}, huberr.New(huberr.DeviceAlreadyExists, "A device with ID '%s' is already registered.", d.DeviceID)
		}
		e, err := r.newEntry(d.DeviceID, d.Status, d.Authentication.SymmetricKey.PrimaryKey, d.Authentication.SymmetricKey.SecondaryKey, nowT.UnixNano())
		if err != nil {
			r.mu.Unlock()
			return Device{}, err
		}
		e.dev.StatusReason = d.StatusReason
		e.dev.Capabilities = d.Capabilities
		if err := r.persist([]*entry{e}, true, true); err != nil {
			r.mu.Unlock()
			return Device{}, err
		}
		r.publish(e)
		r.mu.Unlock()
		return e.device(), nil
	}
	defer r.mu.Unlock()
	if old == nil {
		return Device{}, notFound(d.DeviceID)
	}
	if want := parseIfMatch(ifMatch); want != "" && want != old.dev.ETag {
		return Device{}, preconditionFailed()
	}
	e := old.clone()
	e.devN++
	e.dev.ETag = deviceETag(e.devN)
	switch d.Status {
	case "", e.dev.Status:
	case "enabled", "disabled":
		e.dev.Status = d.Status
		e.dev.StatusUpdatedTime = now
	default:
		return Device{}, huberr.New(huberr.ArgumentInvalid, "Device status must be 'enabled' or 'disabled', not %q.", d.Status)
	}
	e.dev.StatusReason = d.StatusReason
	e.dev.Capabilities = d.Capabilities
	if sk := d.Authentication.SymmetricKey; sk.PrimaryKey != "" || sk.SecondaryKey != "" {
		if err := checkSymmetricKeys(sk, "device"); err != nil {
			return Device{}, err
		}
		e.dev.Authentication.SymmetricKey = sk
	}
	if err := r.persist([]*entry{e}, true, false); err != nil {
		return Device{}, err
	}
	r.publish(e)
	return e.device(), nil
}

// DeleteDevice removes a device and its twin (If-Match as for updates).
func (r *Registry) DeleteDevice(deviceID, ifMatch string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byID[deviceID]
	if old == nil {
		return notFound(deviceID)
	}
	if want := parseIfMatch(ifMatch); want != "" && want != old.dev.ETag {
		return preconditionFailed()
	}
	lo, hi := r.moduleRange(deviceID)
	modKeys := slices.Clone(r.modKeys[lo:hi])
	err := r.commit.writeSync(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(bucketDevices).Delete([]byte(deviceID)); err != nil {
			return err
		}
		for _, k := range modKeys {
			if err := tx.Bucket(bucketModules).Delete([]byte(k)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketTwins).Delete([]byte(deviceID))
	})
	if err != nil {
		return storeError(err)
	}
	r.removeLocked(deviceID)
	return nil
}

// SeedDevice is one device for Import.
type SeedDevice struct {
	DeviceID                 string
	Status                   string // "" = enabled
	Tags, Desired, Reported  map[string]any
	PrimaryKey, SecondaryKey string // "" = generate
}

// Import creates devices in bulk, in one transaction: all or nothing. A duplicate id (already
// registered or twice in devs) fails the whole batch with 409001.
func (r *Registry) Import(devs []SeedDevice) error {
	at := r.nowNanos()
	es := make([]*entry, 0, len(devs))
	seen := make(map[string]bool, len(devs))
	for _, s := range devs {
		if seen[s.DeviceID] {
			return huberr.New(huberr.DeviceAlreadyExists, "A device with ID '%s' is already registered.", s.DeviceID)
		}
		seen[s.DeviceID] = true
		e, err := r.newEntry(s.DeviceID, s.Status, s.PrimaryKey, s.SecondaryKey, at)
		if err != nil {
			return err
		}
		for _, sec := range []struct {
			name    string
			in      map[string]any
			out     *[]member
			at, ver int64
			size    string
			limit   int
		}{
			{"tags", s.Tags, &e.tw.tags, 0, 0, sizeTags, hubapi.MaxTagsBytes},
			{"properties.desired", s.Desired, &e.tw.desired, at, 1, sizeDesired, hubapi.MaxPropertiesBytes},
			{"properties.reported", s.Reported, &e.tw.reported, at, 0, sizeReported, hubapi.MaxPropertiesBytes},
		} {
			m, err := normalizeMap(sec.in)
			if err != nil {
				return patchError(sec.name, err)
			}
			m = stripNulls(m)
			if err := checkKeys(sec.name, m); err != nil {
				return err
			}
			*sec.out = membersOf(m, sec.at, sec.ver)
			if err := checkSize(sec.size, sec.limit, nil, *sec.out); err != nil {
				return err
			}
		}
		es = append(es, e)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range es {
		if r.byID[e.dev.DeviceID] != nil {
			return huberr.New(huberr.DeviceAlreadyExists, "A device with ID '%s' is already registered.", e.dev.DeviceID)
		}
	}
	if err := r.persist(es, true, true); err != nil {
		return err
	}
	// Insert in bulk: append and sort once instead of one memmove per device.
	for _, e := range es {
		r.byID[e.dev.DeviceID] = e
		r.ids = append(r.ids, e.dev.DeviceID)
	}
	slices.Sort(r.ids)
	return nil
}

// SetConnectionState records a device (dis)connecting: connectionState,
// connectionStateUpdatedTime and lastActivityTime. It writes memory only: connection state is
// volatile (as on Azure after a restart, Open marks every device Disconnected), so a fleet
// of a million devices connecting costs no store transactions and no new document.
func (r *Registry) SetConnectionState(deviceID string, connected bool, at time.Time) error {
	e := r.get(deviceID)
	if e == nil {
		return notFound(deviceID)
	}
	n := at.UnixNano()
	e.vol.connected.Store(connected)
	e.vol.connAt.Store(n)
	e.vol.activeAt.Store(n)
	e.vol.dirty.Store(true)
	return nil
}

// RecordActivity sets a device's lastActivityTime (device traffic: telemetry, twin requests,
// method answers), in memory only like SetConnectionState.
func (r *Registry) RecordActivity(deviceID string, at time.Time) error {
	e := r.get(deviceID)
	if e == nil {
		return notFound(deviceID)
	}
	e.vol.activeAt.Store(at.UnixNano())
	e.vol.dirty.Store(true)
	return nil
}

// Flush writes the volatile state (connectionStateUpdatedTime, lastActivityTime) of the
// devices whose state changed since the last write, in one transaction, so that
// lastActivityTime survives a restart (the connection state itself does not: Open marks every
// device Disconnected). The hub calls it when it closes.
func (r *Registry) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var es []*entry
	for _, id := range r.ids {
		if e := r.byID[id]; e.vol.dirty.Load() {
			es = append(es, e)
		}
	}
	if len(es) == 0 {
		return nil
	}
	if err := r.persist(es, true, false); err != nil {
		return err
	}
	for _, e := range es {
		e.vol.dirty.Store(false)
	}
	return nil
}

// twinWrite is the common path of UpdateTwin, ReplaceTwin and PatchReported for devices
// (moduleID "") and modules.
func (r *Registry) twinWrite(deviceID, moduleID, ifMatch string, change func(e *entry, now int64) error) (*entry, error) {
	now := r.nowNanos()
	r.mu.Lock()
	old, err := r.lookupLocked(deviceID, moduleID)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if want := parseIfMatch(ifMatch); want != "" && want != etagString(old.tw.etag) {
		r.mu.Unlock()
		return nil, preconditionFailed()
	}
	e := old.clone()
	if err := change(e, now); err != nil {
		r.mu.Unlock()
		return nil, err
	}
	// Reserved in publish order, encoded and waited for without the mutex, so that concurrent
	// writers share one commit. Readers may see the write a moment before it is durable; it
	// is acknowledged only after. The encoding reads the published entry, which never changes.
	op := r.commit.reserve()
	r.publish(e)
	r.mu.Unlock()
	op.prepare(records([]*entry{e}, false, true))
	if err := r.commit.wait(op); err != nil {
		return nil, storeError(err)
	}
	return e, nil
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
// that a job applies it to each of its devices without doing that again (ApplyPatch).
type PreparedPatch struct{ tags, desired map[string]any }

// PreparePatch checks and normalises a patch as UpdateTwin does.
func PreparePatch(patch hubapi.TwinPatch) (*PreparedPatch, error) {
	tags, desired, err := patchSections(patch)
	if err != nil {
		return nil, err
	}
	return &PreparedPatch{tags: tags, desired: desired}, nil
}

// ApplyPatch is UpdateTwin of a prepared patch, without the copy of the new twin that
// UpdateTwin returns (a job has no use for it).
func (r *Registry) ApplyPatch(deviceID string, p *PreparedPatch, ifMatch string) error {
	_, err := r.applyPatch(deviceID, "", p, ifMatch)
	return err
}

func (r *Registry) applyPatch(deviceID, moduleID string, p *PreparedPatch, ifMatch string) (*entry, error) {
	tags, desired := p.tags, p.desired
	var notify map[string]any
	e, err := r.twinWrite(deviceID, moduleID, ifMatch, func(e *entry, now int64) error {
		if len(tags) == 0 && len(desired) == 0 {
			return nil // nothing to write: versions stay (the hub answers with the twin)
		}
		e.tw.etag++
		if len(tags) > 0 {
			nt := mergeMembers(e.tw.tags, tags, 0, 0)
			if err := checkSize(sizeTags, hubapi.MaxTagsBytes, e.tw.tags, nt); err != nil {
				return err
			}
			e.tw.tags = nt
			e.tw.tagsV++
		}
		if len(desired) > 0 {
			nd := mergeMembers(e.tw.desired, desired, now, e.tw.desiredV+1)
			if err := checkSize(sizeDesired, hubapi.MaxPropertiesBytes, e.tw.desired, nd); err != nil {
				return err
			}
			e.tw.desiredV++
			e.tw.desired, e.tw.desiredAt = nd, now
			notify = desired
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if moduleID == "" && notify != nil && r.opts.OnDesired != nil {
		r.opts.OnDesired(deviceID, deepCopyMap(notify), e.tw.desiredV)
	}
	return e, nil
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
		nt := membersOf(tags, 0, 0)
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
	return e.Map(), nil
}

// PatchReported merge-patches reported properties (the device side) and returns the new
// reported $version. Keys starting with '$' are rejected (400004), as the hub does, and the
// other twin limits apply (checkKeys, checkSize).
func (r *Registry) PatchReported(deviceID string, patch map[string]any) (int64, error) {
	return r.patchReported(deviceID, "", patch)
}

func (r *Registry) patchReported(deviceID, moduleID string, patch map[string]any) (int64, error) {
	p, err := normalizeMap(patch)
	if err != nil {
		return 0, patchError("properties.reported", err)
	}
	if err := checkKeys("properties.reported", p); err != nil {
		return 0, err
	}
	e, err := r.twinWrite(deviceID, moduleID, "", func(e *entry, now int64) error {
		nr := mergeMembers(e.tw.reported, p, now, 0)
		if err := checkSize(sizeReported, hubapi.MaxPropertiesBytes, e.tw.reported, nr); err != nil {
			return err
		}
		e.tw.reportedV++
		e.tw.reported, e.tw.reportedAt = nr, now
		return nil
	})
	if err != nil {
		return 0, err
	}
	return e.tw.reportedV, nil
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

// checkSymmetricKeys accepts a pair of symmetric keys given by a client (device or module identity)
// only if both are base64 encodings of 16 to 64 bytes, as the hub requires.
func checkSymmetricKeys(sk SymmetricKey, what string) error {
	for _, k := range []string{sk.PrimaryKey, sk.SecondaryKey} {
		if b, err := base64.StdEncoding.DecodeString(k); err != nil || len(b) < 16 || len(b) > 64 {
			return huberr.New(huberr.ArgumentInvalid, "The %s's symmetric keys must both be base64 encodings of 16 to 64 bytes.", what)
		}
	}
	return nil
}
