package registry

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

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

func (r *Registry) get(id string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
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
	n := len(r.order)
	if max > 0 && max < n {
		n = max
	}
	out := make([]Device, 0, n)
	for _, e := range r.order[:n] {
		out = append(out, e.device())
	}
	return out
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
		if err := tx.Bucket(bucketVolatile).Delete([]byte(deviceID)); err != nil {
			return err
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
	r.seedMu.Lock() // one interner for every seeding batch, so the whole fleet shares values
	defer r.seedMu.Unlock()
	if r.seedIntern == nil {
		r.seedIntern = newInterner()
	}
	in := r.seedIntern
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
			*sec.out = membersOf(m, sec.at, sec.ver, in)
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
	}
	r.order = append(r.order, es...)
	slices.SortFunc(r.order, func(a, b *entry) int { return strings.Compare(a.dev.DeviceID, b.dev.DeviceID) })
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
