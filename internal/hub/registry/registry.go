package registry

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

// twinState is the persisted twin ("twins" bucket); the rendered document is derived from it
// and the identity.
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

// entry is one device in memory. dev, tw and doc are replaced, never mutated, once published.
// A published entry's tw.Desired and tw.Reported are nil: their values live only in doc (the
// doc's sections are the same maps plus $metadata and $version), which halves the maps a twin
// holds; clone restores them for a write.
type entry struct {
	dev  Device // for a module: its identity's common fields (DeviceID is the parent device)
	devN int64  // identity etag counter
	mod  *moduleInfo
	tw   twinState
	doc  map[string]any
	cfg  map[string]any // the twin's "configurations" member (ADM statuses); volatile
}

// moduleInfo marks a module entry: its id and managedBy.
type moduleInfo struct {
	ModuleID  string
	ManagedBy string
}

// finalize renders the document and drops the duplicate section maps.
func (e *entry) finalize() {
	e.doc = render(e)
	e.tw.Desired, e.tw.Reported = nil, nil
}

// clone returns an unpublished copy of a published entry with its sections restored, to be
// changed, persisted and published in place of e.
func (e *entry) clone() *entry {
	n := &entry{dev: e.dev, devN: e.devN, mod: e.mod, tw: e.tw, cfg: e.cfg}
	props := e.doc["properties"].(map[string]any)
	n.tw.Desired = hubapi.TwinValues(props["desired"].(map[string]any))
	n.tw.Reported = hubapi.TwinValues(props["reported"].(map[string]any))
	return n
}

// Constant parts of every twin document, shared (documents are immutable).
var (
	x509Null   = map[string]any{"primaryThumbprint": nil, "secondaryThumbprint": nil}
	capsNoEdge = map[string]any{"iotEdge": false}
	capsEdge   = map[string]any{"iotEdge": true}
	emptyTags  = map[string]any{}
)

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
	// dirty: devices whose volatile state (connection, lastActivityTime) changed since it
	// was last written; Flush writes them.
	dirty map[string]bool
	// gen counts writes of identities and twins (not volatile state): Generation.
	gen atomic.Uint64
}

// Open loads the registry from db, creating its buckets on first use.
func Open(db *bbolt.DB, opts Options) (*Registry, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Registry{db: db, commit: newCommitter(db), opts: opts, byID: map[string]*entry{}, mods: map[string]*entry{}, dirty: map[string]bool{}}
	now := ""
	interned := map[string]map[string]any{}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketTwins, bucketMeta, bucketModules} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
				return err
			}
		case string(v) != schemaVersion:
			return fmt.Errorf("registry: data was written by an incompatible version (schema %s, want %s)", v, schemaVersion)
		}
		twins := tx.Bucket(bucketTwins)
		err := tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			var rec deviceRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("registry: device %q: %w", k, err)
			}
			var tw twinState
			tv := twins.Get(k)
			if tv == nil {
				return fmt.Errorf("registry: device %q has no twin", k)
			}
			if err := json.Unmarshal(tv, &tw); err != nil {
				return fmt.Errorf("registry: twin %q: %w", k, err)
			}
			tw.DesiredMeta = internMeta(tw.DesiredMeta, interned)
			tw.ReportedMeta = internMeta(tw.ReportedMeta, interned)
			// No device session survives a restart: connection state is volatile (it is
			// kept in memory only, see SetConnectionState).
			if rec.Device.ConnectionState == "Connected" {
				if now == "" {
					now = r.now()
				}
				rec.Device.ConnectionStateUpdatedTime = now
			}
			rec.Device.ConnectionState = "Disconnected"
			e := &entry{dev: rec.Device, devN: rec.ETagN, tw: tw}
			e.finalize()
			r.byID[rec.DeviceID] = e
			r.ids = append(r.ids, rec.DeviceID) // bbolt iterates keys in byte order = sorted
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketModules).ForEach(func(k, v []byte) error {
			e, err := decodeModule(v, interned)
			if err != nil {
				return fmt.Errorf("registry: module %q: %w", k, err)
			}
			e.finalize()
			r.mods[string(k)] = e
			r.modKeys = append(r.modKeys, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// deviceRecord is the persisted identity ("devices" bucket).
type deviceRecord struct {
	Device
	ETagN int64 `json:"etagN"`
}

func (r *Registry) now() string { return FormatTime(r.opts.Now()) }

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
	return e.dev, nil
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
		out = append(out, r.byID[id].dev)
	}
	return out
}

// GetTwin returns a copy of the twin document, as GET /twins/{id} returns it.
func (r *Registry) GetTwin(deviceID string) (map[string]any, error) {
	e := r.get(deviceID)
	if e == nil {
		return nil, notFound(deviceID)
	}
	return deepCopyMap(e.doc), nil
}

// forEachChunk is how many documents ForEachTwin collects per read lock, so that a scan of a
// large fleet never holds the lock for long and writers interleave.
const forEachChunk = 512

// ForEachTwin calls fn with every twin document in device-id order until fn returns false.
// doc is the shared immutable document: fn must not mutate it. (It may keep it: documents are
// replaced, never changed, so a kept reference is a consistent snapshot of that twin.) No lock
// is held while fn runs; a scan concurrent with writes sees each twin either before or after
// a write, and devices created during the scan may or may not be visited.
func (r *Registry) ForEachTwin(fn func(doc map[string]any) bool) {
	var batch []map[string]any
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
			batch = append(batch, r.byID[r.ids[i]].doc)
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

// --- rendering ---------------------------------------------------------------------------------

// render builds the twin document of e. It shares tags/desired/reported subtrees with e.tw,
// which are immutable once stored.
func render(e *entry) map[string]any {
	d, tw := e.dev, e.tw
	desired := make(map[string]any, len(tw.Desired)+2)
	for k, v := range tw.Desired {
		desired[k] = v
	}
	desired["$metadata"] = tw.DesiredMeta
	desired["$version"] = float64(tw.DesiredVersion)
	reported := make(map[string]any, len(tw.Reported)+2)
	for k, v := range tw.Reported {
		reported[k] = v
	}
	reported["$metadata"] = tw.ReportedMeta
	reported["$version"] = float64(tw.ReportedVersion)
	tags := tw.Tags
	if len(tags) == 0 {
		tags = emptyTags
	}
	caps := capsNoEdge
	if d.Capabilities.IotEdge {
		caps = capsEdge
	}
	doc := map[string]any{
		"deviceId":                  d.DeviceID,
		"modelId":                   "",
		"etag":                      etagString(tw.ETag),
		"deviceEtag":                d.ETag,
		"version":                   float64(tw.DesiredVersion + tw.ReportedVersion + tw.TagsVersion),
		"status":                    d.Status,
		"statusUpdateTime":          d.StatusUpdatedTime,
		"connectionState":           d.ConnectionState,
		"lastActivityTime":          d.LastActivityTime,
		"cloudToDeviceMessageCount": float64(d.CloudToDeviceMessageCount),
		"authenticationType":        "sas",
		"x509Thumbprint":            x509Null,
		"capabilities":              caps,
		"tags":                      tags,
		"properties":                map[string]any{"desired": desired, "reported": reported},
	}
	if d.StatusReason != nil {
		doc["statusReason"] = *d.StatusReason
	}
	if len(e.cfg) > 0 {
		doc["configurations"] = e.cfg
	}
	if e.mod != nil {
		// A module twin: moduleId, the module identity's etag as deviceEtag, no
		// capabilities (those belong to devices) [inferred from the swagger Twin model].
		doc["moduleId"] = e.mod.ModuleID
		delete(doc, "capabilities")
	}
	return doc
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
				err = add(bucketDevices, e.dev.DeviceID, deviceRecord{Device: e.dev, ETagN: e.devN})
			}
			if err == nil && withTwin {
				err = add(bucketTwins, e.dev.DeviceID, e.tw)
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
	e.finalize()
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

func (r *Registry) newEntry(id, status string, primary, secondary string, now string, dst, rst *stamp) (*entry, error) {
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
			DeviceID:                   id,
			GenerationID:               newGenerationID(),
			ETag:                       deviceETag(1),
			ConnectionState:            "Disconnected",
			Status:                     status,
			ConnectionStateUpdatedTime: zeroTime,
			StatusUpdatedTime:          zeroTime,
			LastActivityTime:           zeroTime,
			Authentication: Authentication{
				SymmetricKey: SymmetricKey{PrimaryKey: primary, SecondaryKey: secondary},
				Type:         "sas",
			},
		},
		devN: 1,
		tw: twinState{
			ETag:            1,
			DesiredVersion:  1,
			ReportedVersion: 1,
			Tags:            map[string]any{},
			Desired:         map[string]any{},
			Reported:        map[string]any{},
			DesiredMeta:     dst.leafNode(),
			ReportedMeta:    rst.leafNode(),
		},
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
	now := r.now()
	r.mu.Lock()
	old := r.byID[d.DeviceID]
	if strings.TrimSpace(ifMatch) == "" {
		if old != nil {
			r.mu.Unlock()
			return Device{}, huberr.New(huberr.DeviceAlreadyExists, "A device with ID '%s' is already registered.", d.DeviceID)
		}
		e, err := r.newEntry(d.DeviceID, d.Status, d.Authentication.SymmetricKey.PrimaryKey, d.Authentication.SymmetricKey.SecondaryKey, now,
			newStamp(now, 1, true), newStamp(now, 1, false))
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
		return e.dev, nil
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
	return e.dev, nil
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
	now := r.now()
	dst, rst := newStamp(now, 1, true), newStamp(now, 1, false)
	es := make([]*entry, 0, len(devs))
	seen := make(map[string]bool, len(devs))
	for _, s := range devs {
		if seen[s.DeviceID] {
			return huberr.New(huberr.DeviceAlreadyExists, "A device with ID '%s' is already registered.", s.DeviceID)
		}
		seen[s.DeviceID] = true
		e, err := r.newEntry(s.DeviceID, s.Status, s.PrimaryKey, s.SecondaryKey, now, dst, rst)
		if err != nil {
			return err
		}
		for _, sec := range []struct {
			name  string
			in    map[string]any
			out   *map[string]any
			meta  *map[string]any
			st    *stamp
			size  string
			limit int
		}{
			{"tags", s.Tags, &e.tw.Tags, nil, nil, sizeTags, hubapi.MaxTagsBytes},
			{"properties.desired", s.Desired, &e.tw.Desired, &e.tw.DesiredMeta, dst, sizeDesired, hubapi.MaxPropertiesBytes},
			{"properties.reported", s.Reported, &e.tw.Reported, &e.tw.ReportedMeta, rst, sizeReported, hubapi.MaxPropertiesBytes},
		} {
			m, err := normalizeMap(sec.in)
			if err != nil {
				return patchError(sec.name, err)
			}
			m = stripNulls(m)
			if err := checkKeys(sec.name, m); err != nil {
				return err
			}
			if m != nil {
				*sec.out = m
			}
			if err := checkSize(sec.size, sec.limit, nil, *sec.out); err != nil {
				return err
			}
			if sec.meta != nil {
				*sec.meta = freshMeta(*sec.out, sec.st)
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
		e.finalize()
		r.byID[e.dev.DeviceID] = e
		r.ids = append(r.ids, e.dev.DeviceID)
	}
	slices.Sort(r.ids)
	return nil
}

// SetConnectionState records a device (dis)connecting: connectionState,
// connectionStateUpdatedTime and lastActivityTime. It writes memory only: connection state is
// volatile (as on Azure after a restart, Open marks every device Disconnected), so a fleet
// of a million devices connecting costs no store transactions. The new document shares
// everything but its root with the old one.
func (r *Registry) SetConnectionState(deviceID string, connected bool, at time.Time) error {
	state := "Disconnected"
	if connected {
		state = "Connected"
	}
	ts := FormatTime(at)
	return r.setVolatile(deviceID, func(d *Device) {
		d.ConnectionState = state
		d.ConnectionStateUpdatedTime = ts
		d.LastActivityTime = ts
	})
}

// RecordActivity sets a device's lastActivityTime (device traffic: telemetry, twin requests,
// method answers), in memory only like SetConnectionState.
func (r *Registry) RecordActivity(deviceID string, at time.Time) error {
	ts := FormatTime(at)
	return r.setVolatile(deviceID, func(d *Device) { d.LastActivityTime = ts })
}

func (r *Registry) setVolatile(deviceID string, change func(d *Device)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.byID[deviceID]
	if old == nil {
		return notFound(deviceID)
	}
	n := *old
	change(&n.dev)
	r.dirty[deviceID] = true
	doc := maps.Clone(old.doc)
	doc["connectionState"] = n.dev.ConnectionState
	doc["lastActivityTime"] = n.dev.LastActivityTime
	n.doc = doc
	r.byID[deviceID] = &n
	return nil
}

// Flush writes the volatile state (connectionStateUpdatedTime, lastActivityTime) of the
// devices whose state changed since the last write, in one transaction, so that
// lastActivityTime survives a restart (the connection state itself does not: Open marks every
// device Disconnected). The hub calls it when it closes.
func (r *Registry) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.dirty) == 0 {
		return nil
	}
	es := make([]*entry, 0, len(r.dirty))
	for id := range r.dirty {
		if e := r.byID[id]; e != nil {
			es = append(es, e)
		}
	}
	if err := r.persist(es, true, false); err != nil {
		return err
	}
	clear(r.dirty)
	return nil
}

// twinWrite is the common path of UpdateTwin, ReplaceTwin and PatchReported for devices
// (moduleID "") and modules.
func (r *Registry) twinWrite(deviceID, moduleID, ifMatch string, change func(e *entry, now string) error) (*entry, error) {
	now := r.now()
	r.mu.Lock()
	old, err := r.lookupLocked(deviceID, moduleID)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	if want := parseIfMatch(ifMatch); want != "" && want != etagString(old.tw.ETag) {
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
	// is acknowledged only after. The encoding reads a copy of the twin state taken before
	// publish (which drops the entry's section maps); published maps are never changed.
	op := r.commit.reserve()
	snapshot := &entry{dev: e.dev, devN: e.devN, mod: e.mod, tw: e.tw}
	r.publish(e)
	r.mu.Unlock()
	op.prepare(records([]*entry{snapshot}, false, true))
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
	return deepCopyMap(e.doc), nil
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
	e, err := r.twinWrite(deviceID, moduleID, ifMatch, func(e *entry, now string) error {
		if len(tags) == 0 && len(desired) == 0 {
			return nil // nothing to write: versions stay (the hub answers with the twin)
		}
		e.tw.ETag++
		if len(tags) > 0 {
			nt := mergePatch(e.tw.Tags, tags)
			if err := checkSize(sizeTags, hubapi.MaxTagsBytes, e.tw.Tags, nt); err != nil {
				return err
			}
			e.tw.Tags = nt
			e.tw.TagsVersion++
		}
		if len(desired) > 0 {
			nd := mergePatch(e.tw.Desired, desired)
			if err := checkSize(sizeDesired, hubapi.MaxPropertiesBytes, e.tw.Desired, nd); err != nil {
				return err
			}
			e.tw.DesiredVersion++
			e.tw.DesiredMeta = mergeMeta(e.tw.DesiredMeta, e.tw.Desired, desired, newStamp(now, e.tw.DesiredVersion, true))
			e.tw.Desired = nd
			notify = desired
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if moduleID == "" && notify != nil && r.opts.OnDesired != nil {
		r.opts.OnDesired(deviceID, deepCopyMap(notify), e.tw.DesiredVersion)
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
	e, err := r.twinWrite(deviceID, moduleID, ifMatch, func(e *entry, now string) error {
		if err := checkSize(sizeTags, hubapi.MaxTagsBytes, e.tw.Tags, tags); err != nil {
			return err
		}
		if err := checkSize(sizeDesired, hubapi.MaxPropertiesBytes, e.tw.Desired, desired); err != nil {
			return err
		}
		e.tw.ETag++
		e.tw.TagsVersion++
		e.tw.Tags = tags
		e.tw.DesiredVersion++
		diff := diffPatch(e.tw.Desired, desired)
		e.tw.DesiredMeta = mergeMeta(e.tw.DesiredMeta, e.tw.Desired, diff, newStamp(now, e.tw.DesiredVersion, true))
		e.tw.Desired = desired
		return nil
	})
	if err != nil {
		return nil, err
	}
	if moduleID == "" && r.opts.OnDesired != nil {
		r.opts.OnDesired(deviceID, deepCopyMap(desired), e.tw.DesiredVersion)
	}
	return deepCopyMap(e.doc), nil
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
	e, err := r.twinWrite(deviceID, moduleID, "", func(e *entry, now string) error {
		nr := mergePatch(e.tw.Reported, p)
		if err := checkSize(sizeReported, hubapi.MaxPropertiesBytes, e.tw.Reported, nr); err != nil {
			return err
		}
		e.tw.ReportedVersion++
		e.tw.ReportedMeta = mergeMeta(e.tw.ReportedMeta, e.tw.Reported, p, newStamp(now, e.tw.ReportedVersion, false))
		e.tw.Reported = nr
		return nil
	})
	if err != nil {
		return 0, err
	}
	return e.tw.ReportedVersion, nil
}

// DesiredAndReported returns a copy of the desired and reported properties with $version and
// $metadata, as a device's twin GET returns them (for the device-side transports).
func (r *Registry) DesiredAndReported(deviceID string) (desired, reported map[string]any, err error) {
	e := r.get(deviceID)
	if e == nil {
		return nil, nil, notFound(deviceID)
	}
	props := e.doc["properties"].(map[string]any)
	return deepCopyMap(props["desired"].(map[string]any)), deepCopyMap(props["reported"].(map[string]any)), nil
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
