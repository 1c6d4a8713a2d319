package state

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// Hub is what the store needs of a hub; *hubclient.Client implements it. The store recognises
// a missing device (404), a stale etag (412) and an over-size twin (403100) with
// hubapi.StatusOf and hubapi.CodeOf (the HTTPStatus and HubCode methods of hubclient.Error), so
// that this package does not import hubclient, whose tests import packages that import this one.
type Hub interface {
	GetTwin(ctx context.Context, deviceID string) (map[string]any, error)
	UpdateTwin(ctx context.Context, deviceID string, patch hubapi.TwinPatch, etag string) (map[string]any, error)
	CreateDevice(ctx context.Context, deviceID string) error
}

// Store reads and writes one named state on a hub. It is safe for concurrent use; separate
// Stores (in one process or many) coordinate through the hub alone.
type Store struct {
	hub    Hub
	name   string
	device string
	// poll is how often Lock retries a held lock while its timeout lasts.
	poll time.Duration
	// host is this machine's name (os.Hostname), and alive says whether a process of it runs
	// (ProcessAlive): what Lock needs to take over a lock left by a dead process. Tests
	// replace both.
	host  string
	alive func(pid int) bool
}

// maxCAS bounds how many times one operation re-reads the twin after losing a
// compare-and-swap (412) to another writer.
const maxCAS = 20

// Open returns the store of the named state on h.
func Open(h Hub, name string) (*Store, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	host, _ := os.Hostname() // "" when unknown: no lock is then taken over
	return &Store{hub: h, name: name, device: DeviceID(name), poll: time.Second, host: host, alive: ProcessAlive}, nil
}

// Name is the state's name.
func (s *Store) Name() string { return s.name }

// DeviceID is the id of the device whose twin holds the state.
func (s *Store) DeviceID() string { return s.device }

// Read returns the state: the empty State (Format, Name, Serial 0, no resources) when it has
// never been written.
func (s *Store) Read(ctx context.Context) (*State, error) {
	st, _, err := s.ReadWithLock(ctx)
	return st, err
}

// ReadWithLock is Read, and the state's lock (nil when it is not locked), from one read.
func (s *Store) ReadWithLock(ctx context.Context) (*State, *LockInfo, error) {
	rec, err := s.fetch(ctx)
	if err != nil {
		return nil, nil, err
	}
	return rec.state, rec.lock(), nil
}

// fetch reads and decodes the state device's twin; a device that does not exist is an empty
// record.
func (s *Store) fetch(ctx context.Context) (*record, error) {
	twin, err := s.hub.GetTwin(ctx, s.device)
	if hubapi.StatusOf(err) == 404 {
		return &record{state: emptyState(s.name)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state %q (device %s): %w", s.name, s.device, err)
	}
	return decodeTwin(s.device, s.name, twin)
}

// ensure is fetch, creating the device when it does not exist. A record without a header
// gets a new one (serial 0, a new lineage) for the caller's write to store.
func (s *Store) ensure(ctx context.Context) (*record, error) {
	rec, err := s.fetch(ctx)
	if err != nil || rec.exists {
		return fill(rec, s.name), err
	}
	// Two processes may create it at once: the second one's 409 is no failure.
	if err := s.hub.CreateDevice(ctx, s.device); err != nil && hubapi.StatusOf(err) != 409 {
		return nil, fmt.Errorf("creating the state device %s: %w", s.device, err)
	}
	rec, err = s.fetch(ctx)
	return fill(rec, s.name), err
}

func fill(rec *record, name string) *record {
	if rec != nil && rec.hdr == nil {
		rec.hdr = &header{Format: Format, Name: name, Lineage: uuid.NewString()}
		rec.state.Lineage = rec.hdr.Lineage
	}
	return rec
}

// put writes st as the next serial of rec (header and body in one PATCH, If-Match rec's
// etag) and returns what it wrote. A stale etag is an error with status 412.
func (s *Store) put(ctx context.Context, rec *record, st *State) (*State, error) {
	if st.Lineage != "" && st.Lineage != rec.hdr.Lineage {
		return nil, fmt.Errorf("%w: the state %q to write was read from lineage %s, but device %s now holds lineage %s (the state was deleted and made again): read it again", ErrLineage, s.name, st.Lineage, s.device, rec.hdr.Lineage)
	}
	next := *st
	next.Format, next.Name, next.Lineage, next.Serial = Format, s.name, rec.hdr.Lineage, rec.hdr.Serial+1
	if next.Resources == nil {
		next.Resources = []Resource{}
	}
	body, js, err := encodeBody(&next)
	if err != nil {
		return nil, err
	}
	if n := rec.otherDesired + len(MarkerTag) + hubapi.TwinSize(body); n > hubapi.MaxPropertiesBytes {
		return nil, fmt.Errorf("%w: the state %q is %d bytes of JSON, %d bytes in device %s's desired properties once compressed, over IoT Hub's limit of %d bytes: split the configuration into several named states (the hub block's state, or -state)",
			ErrTooLarge, s.name, len(js), n, s.device, hubapi.MaxPropertiesBytes)
	}
	hdr := *rec.hdr
	hdr.Serial = next.Serial
	if err := s.patch(ctx, rec, &hdr, body); err != nil {
		return nil, err
	}
	// What was written, as a reader will see it (a copy the caller may change freely).
	var out State
	if err := json.Unmarshal(js, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// patch writes hdr (and body, when not nil) over rec in one PATCH with If-Match: only the
// keys that differ, and nil for keys to delete (lock, chunks no longer used).
func (s *Store) patch(ctx context.Context, rec *record, hdr *header, body map[string]any) error {
	if rec.etag == "" {
		return fmt.Errorf("the hub returned device %s's twin without an etag: iotplan writes states only with If-Match", s.device)
	}
	var newHdr map[string]any
	if err := remarshal(hdr, &newHdr); err != nil {
		return err
	}
	if n := rec.otherTags + len(MarkerTag) + hubapi.TwinSize(newHdr); n > hubapi.MaxTagsBytes {
		return fmt.Errorf("%w: the tags of device %s would take %d bytes, over IoT Hub's limit of %d: remove the tags other than %s from it", ErrTooLarge, s.device, n, hubapi.MaxTagsBytes, MarkerTag)
	}
	p := hubapi.TwinPatch{Tags: map[string]any{MarkerTag: sectionPatch(rec.rawHeader, newHdr)}}
	if body != nil {
		p.Properties = &hubapi.TwinProperties{Desired: map[string]any{MarkerTag: sectionPatch(rec.rawBody, body)}}
	}
	_, err := s.hub.UpdateTwin(ctx, s.device, p, rec.etag)
	if hubapi.CodeOf(err) == 403100 { // DeviceModelMaxPropertiesExceeded
		return fmt.Errorf("%w: device %s: %v; split the configuration into several named states", ErrTooLarge, s.device, err)
	}
	if err != nil && hubapi.StatusOf(err) != 412 {
		return fmt.Errorf("writing the state %q (device %s): %w", s.name, s.device, err)
	}
	return err
}

// sectionPatch is the merge patch of one of the twin's iotplanState values.
func sectionPatch(old, new map[string]any) map[string]any {
	if old == nil {
		return new
	}
	return mergePatch(old, new)
}

// WriteUnlocked writes st without holding the lock, whoever holds it (which it leaves in
// place): for -lock=false, which like Terraform's is the user's explicit choice to risk
// overwriting a concurrent run's state. The write is still compare-and-swap.
func (s *Store) WriteUnlocked(ctx context.Context, st *State) (*State, error) {
	return s.write(ctx, s.ensure, st)
}

// write puts st over the record read returns, reading again after each lost compare-and-swap.
func (s *Store) write(ctx context.Context, read func(context.Context) (*record, error), st *State) (*State, error) {
	var out *State
	err := s.cas(ctx, read, func(rec *record) (err error) {
		out, err = s.put(ctx, rec, st)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// cas is a compare-and-swap: it reads the twin with read and writes it with write, which fails
// with status 412 when another writer changed the twin in between; it then does both again, up
// to maxCAS times. Any other error of read or write ends it.
func (s *Store) cas(ctx context.Context, read func(context.Context) (*record, error), write func(*record) error) error {
	for attempt := 1; ; attempt++ {
		rec, err := read(ctx)
		if err != nil {
			return err
		}
		err = write(rec)
		if hubapi.StatusOf(err) != 412 {
			return err
		}
		if attempt == maxCAS {
			return s.contended(err)
		}
	}
}

func (s *Store) contended(err error) error {
	return fmt.Errorf("writing the state %q (device %s): its twin changed under it %d times in a row: %w", s.name, s.device, maxCAS, err)
}
