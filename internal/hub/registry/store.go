package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
)

var (
	bucketDevices = []byte("devices")
	bucketTwins   = []byte("twins")
	bucketMeta    = []byte("meta")
	bucketModules = []byte("modules")
	// bucketVolatile holds each device's connection times (flag, connectionStateUpdatedTime,
	// lastActivityTime), written by Flush: a few bytes a device, so that flushing a million
	// devices at shutdown does not rewrite a million identity records.
	bucketVolatile = []byte("volatile")
	keySchema      = []byte("schema")
)

const schemaVersion = "1"

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

// Open loads the registry from db, creating its buckets on first use.
func Open(db *bbolt.DB, opts Options) (*Registry, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Registry{db: db, commit: newCommitter(db), opts: opts, byID: map[string]*entry{}, mods: map[string]*entry{}}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketDevices, bucketTwins, bucketMeta, bucketModules, bucketVolatile} {
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
// cores (loadDevices): it is most of a restart's time (a million devices, BENCHMARKS.md).
func (r *Registry) load(tx *bbolt.Tx) error {
	entries, err := r.loadDevices(tx)
	if err != nil {
		return err
	}
	r.order = entries // bbolt iterates keys in byte order = sorted
	r.byID = make(map[string]*entry, len(entries))
	for _, e := range entries {
		r.byID[e.dev.DeviceID] = e
	}
	if err := r.loadVolatile(tx); err != nil {
		return err
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

// loadChunk is how many devices one decoding step takes: the cursor reads the next chunk
// while the decoders work, and no list of a million records is built first.
const loadChunk = 4096

// loadChunkOf is one step of loadDevices: records in, entries (or an error) out.
type loadChunkOf struct {
	recs []stored
	out  []*entry
	err  error
}

// loadDevices reads the devices and twins buckets in one pass and decodes them on every core,
// in id order.
func (r *Registry) loadDevices(tx *bbolt.Tx) ([]*entry, error) {
	work := make(chan *loadChunkOf, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			times, d := timeCache{}, newDecoder() // per decoder: interning is not concurrent
			for c := range work {
				c.err = r.decodeRange(c.recs, c.out, times, d)
			}
		})
	}
	var chunks []*loadChunkOf
	cur := &loadChunkOf{}
	send := func() {
		cur.out = make([]*entry, len(cur.recs))
		chunks = append(chunks, cur)
		work <- cur
		cur = &loadChunkOf{}
	}
	var err error
	tc := tx.Bucket(bucketTwins).Cursor()
	tk, tv := tc.First()
	dc := tx.Bucket(bucketDevices).Cursor()
	for k, v := dc.First(); k != nil; k, v = dc.Next() {
		for tk != nil && string(tk) < string(k) {
			tk, tv = tc.Next()
		}
		if tk == nil || string(tk) != string(k) {
			err = fmt.Errorf("registry: device %q has no twin", k)
			break
		}
		if cur.recs == nil {
			cur.recs = make([]stored, 0, loadChunk)
		}
		if cur.recs = append(cur.recs, stored{k, v, tv}); len(cur.recs) == loadChunk {
			send()
		}
	}
	if len(cur.recs) > 0 {
		send()
	}
	close(work)
	wg.Wait()
	n := 0
	for _, c := range chunks {
		err = errors.Join(err, c.err)
		n += len(c.out)
	}
	if err != nil {
		return nil, err
	}
	entries := make([]*entry, 0, n)
	for _, c := range chunks {
		entries = append(entries, c.out...)
	}
	return entries, nil
}

func (r *Registry) decodeRange(recs []stored, out []*entry, times timeCache, d *decoder) error {
	for i, s := range recs {
		rec, err := decodeDevice(s.device, d)
		if err != nil {
			return fmt.Errorf("registry: device %q: %w", s.key, err)
		}
		tw, err := decodeTwin(s.twin, d, times)
		if err != nil {
			return fmt.Errorf("registry: twin %q: %w", s.key, err)
		}
		vol := volatileOf(rec.Device, times)
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

// volatileOf starts a loaded device's volatile state from its identity record (loadVolatile
// then applies newer times from the volatile bucket). The identity keeps none of it.
func volatileOf(d Device, times timeCache) *volatile {
	v := &volatile{wasConnected: d.ConnectionState == "Connected"}
	v.connAt.Store(times.nanos(d.ConnectionStateUpdatedTime))
	v.activeAt.Store(times.nanos(d.LastActivityTime))
	return v
}

// loadVolatile merges the volatile bucket's times into the loaded devices (the later of the
// two records wins) and ends every session: no device session survives a restart
// (SetConnectionState keeps connection state in memory only), so a device last seen
// Connected is Disconnected from now on; its lastActivityTime is kept.
func (r *Registry) loadVolatile(tx *bbolt.Tx) error {
	err := tx.Bucket(bucketVolatile).ForEach(func(k, v []byte) error {
		e := r.byID[string(k)]
		if e == nil {
			return nil
		}
		connected, connAt, activeAt, ok := decodeVolatile(v)
		if !ok {
			return fmt.Errorf("registry: device %q: corrupt volatile record", k)
		}
		if connAt >= e.vol.connAt.Load() {
			e.vol.connAt.Store(connAt)
			e.vol.wasConnected = connected
		}
		e.vol.activeAt.Store(max(activeAt, e.vol.activeAt.Load()))
		return nil
	})
	if err != nil {
		return err
	}
	now := int64(0)
	for _, e := range r.byID {
		if e.vol.wasConnected {
			if now == 0 {
				now = r.opts.Now().UnixNano()
			}
			e.vol.connAt.Store(now)
			e.vol.wasConnected = false
		}
	}
	return nil
}

// deviceRecord is the persisted identity ("devices" bucket).
type deviceRecord struct {
	Device
	ETagN int64 `json:"etagN"`
}

func (r *Registry) now() string { return FormatTime(r.opts.Now()) }

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

// Flush writes the volatile state (connectionStateUpdatedTime, lastActivityTime) of the
// devices whose state changed since the last write, in one transaction, so that
// lastActivityTime survives a restart (the connection state itself does not: Open marks every
// device Disconnected). The hub calls it when it closes.
func (r *Registry) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var es []*entry
	for _, e := range r.order {
		if e.vol.dirty.Load() {
			es = append(es, e)
		}
	}
	if len(es) == 0 {
		return nil
	}
	puts := make([][]byte, len(es))
	for i, e := range es {
		e.vol.dirty.Store(false) // before the copy: a change while it is written stays dirty
		puts[i] = appendVolatile(nil, e.vol.connected.Load(), e.vol.connAt.Load(), e.vol.activeAt.Load())
	}
	err := r.commit.writeSync(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketVolatile)
		for i, e := range es {
			if err := b.Put([]byte(e.dev.DeviceID), puts[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		for _, e := range es {
			e.vol.dirty.Store(true)
		}
		return storeError(err)
	}
	return nil
}
