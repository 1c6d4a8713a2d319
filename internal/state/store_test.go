package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// The tests run against the local hub over HTTPS (hubtest), never a fake: the compare-and-swap
// and the twin limits are the hub's.

const smallFleet = `
device "solo" {}
`

func startHub(t *testing.T) (*hub.Hub, *hubclient.Client) {
	t.Helper()
	h, c, _ := hubtest.StartAudited(t, smallFleet)
	return h, c
}

func openStore(t *testing.T, h Hub, name string) *Store {
	t.Helper()
	s, err := Open(h, name)
	if err != nil {
		t.Fatal(err)
	}
	s.poll = 50 * time.Millisecond
	return s
}

func lock(t *testing.T, s *Store, op string) *Lock {
	t.Helper()
	l, err := s.Lock(context.Background(), LockRequest{Operation: op, Version: "test"}, 0)
	if err != nil {
		t.Fatalf("Lock(%s): %v", op, err)
	}
	return l
}

// sampleState has n resources of both kinds, with keys, and an unfinished apply.
func sampleState(n int) *State {
	st := &State{}
	for i := range n {
		r := Resource{Addr: fmt.Sprintf("twin.r%03d", i), Kind: "twin", Target: fmt.Sprintf("tags.site = 'site-%d'", i),
			Keys:       map[string]json.RawMessage{"desired.floor": json.RawMessage(`3`), "tags.owner": json.RawMessage(`"facilities"`)},
			ConfigHash: fmt.Sprintf("%064x", i), Serial: int64(i % 7)}
		if i%3 == 0 {
			r = Resource{Addr: fmt.Sprintf("method.m%03d", i), Kind: "method", Target: "*", Method: "lockDoor",
				Triggers: "abc", RunTag: "iotplanRun_m", KeepOnRemoval: true, Serial: 1}
		}
		st.Resources = append(st.Resources, r)
	}
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	st.Apply = &ApplyRecord{ID: "a1", Started: start, PlanSerial: 3, Operation: "apply",
		Jobs: []RecordedJob{{Addr: "twin.r001", Step: "update", Request: hubapi.JobRequest{
			JobID: "iotplan-r001", Type: hubapi.JobTypeUpdateTwin, QueryCondition: "tags.site = 'site-1'", StartTime: &start,
			UpdateTwin: &hubapi.TwinPatch{ETag: "*", Properties: &hubapi.TwinProperties{Desired: map[string]any{"floor": 3.0}}}}}},
		Resources: st.Resources[:1]}
	return st
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEmptyState(t *testing.T) {
	_, c := startHub(t)
	s := openStore(t, c, DefaultName)
	st, lk, err := s.ReadWithLock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != Format || st.Name != DefaultName || st.Serial != 0 || st.Lineage != "" || len(st.Resources) != 0 || st.Resources == nil || lk != nil {
		t.Errorf("empty state = %+v, lock %v", st, lk)
	}
	if ok, err := c.DeviceExists(context.Background(), DeviceID(DefaultName)); err != nil || ok {
		t.Errorf("Read created the device (exists %v, %v)", ok, err)
	}
	if _, err := Open(c, "Bad_Name"); !errors.Is(err, ErrName) {
		t.Errorf("Open(Bad_Name) = %v, want ErrName", err)
	}
}

func TestRoundTripAndSerials(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	s := openStore(t, c, "prod")
	l := lock(t, s, "apply")
	want := sampleState(300)
	got, err := l.Write(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if got.Serial != 1 || got.Format != Format || got.Name != "prod" || uuid.Validate(got.Lineage) != nil {
		t.Errorf("first write: serial %d, format %d, name %q, lineage %q", got.Serial, got.Format, got.Name, got.Lineage)
	}
	read, lk, err := s.ReadWithLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, read) != mustJSON(t, got) {
		t.Errorf("read back differs from what was written:\n%s\n%s", mustJSON(t, read)[:300], mustJSON(t, got)[:300])
	}
	if lk == nil || lk.ID != l.Info().ID || lk.Operation != "apply" || lk.PID == 0 || lk.Who == "" {
		t.Errorf("lock read back = %+v, want %+v", lk, l.Info())
	}
	read.Resources = read.Resources[:10]
	read.Apply = nil
	again, err := l.Write(ctx, read)
	if err != nil {
		t.Fatal(err)
	}
	if again.Serial != 2 || again.Lineage != got.Lineage || len(again.Resources) != 10 || again.Apply != nil {
		t.Errorf("second write: %+v", again)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	final, lk, err := s.ReadWithLock(ctx)
	if err != nil || final.Serial != 2 || lk != nil || mustJSON(t, final) != mustJSON(t, again) {
		t.Errorf("after unlock: %+v, lock %v, %v", final, lk, err)
	}
	// A State read from another lineage is refused.
	l = lock(t, s, "apply")
	defer l.Unlock(ctx)
	if _, err := l.Write(ctx, &State{Lineage: uuid.NewString()}); !errors.Is(err, ErrLineage) {
		t.Errorf("write of another lineage = %v, want ErrLineage", err)
	}
}

// body reads the state device's desired.iotplanState as the hub holds it.
func body(t *testing.T, c *hubclient.Client, name string) map[string]any {
	t.Helper()
	twin, err := c.GetTwin(context.Background(), DeviceID(name))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := twin["properties"].(map[string]any)["desired"].(map[string]any)[MarkerTag].(map[string]any)
	return b
}

// noisyState has n resources whose config hashes are random, so that the body barely
// compresses and its size follows n.
func noisyState(n int) *State {
	r := rand.New(rand.NewPCG(1, 2))
	st := &State{}
	for i := range n {
		st.Resources = append(st.Resources, Resource{Addr: fmt.Sprintf("twin.t%d", i), Kind: "twin", Target: "*",
			ConfigHash: fmt.Sprintf("%016x%016x%016x%016x", r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64())})
	}
	return st
}

func TestChunksOverManyValues(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	s := openStore(t, c, DefaultName)
	l := lock(t, s, "apply")
	defer l.Unlock(ctx)
	if _, err := l.Write(ctx, noisyState(200)); err != nil {
		t.Fatal(err)
	}
	b := body(t, c, DefaultName)
	n := int(b["n"].(float64))
	if n < 3 {
		t.Fatalf("a state of 200 random hashes took %d chunks, want several", n)
	}
	for i := range n {
		if p := b[fmt.Sprintf("p%d", i)].(string); len(p) > ChunkSize || (i < n-1 && len(p) != ChunkSize) {
			t.Errorf("chunk p%d has %d characters", i, len(p))
		}
	}
	st, err := l.Write(ctx, noisyState(1))
	if err != nil {
		t.Fatal(err)
	}
	b = body(t, c, DefaultName)
	if b["n"] != 1.0 || len(b) != 4 { // enc, sha256, n, p0: the other chunks were deleted
		t.Errorf("after a small write the body holds %d keys (n = %v), want enc, sha256, n, p0", len(b), b["n"])
	}
	if read, err := s.Read(ctx); err != nil || read.Serial != st.Serial || len(read.Resources) != 1 {
		t.Errorf("read after shrinking: %+v, %v", read, err)
	}
}

// TestTooLargeAtTheHubsLimit finds the largest noisy state whose body fits in 32 KB of desired
// properties as counted here, and checks the hub's own limit agrees: it stores that one, and
// refuses the next size, which Write reports as ErrTooLarge without sending it.
func TestTooLargeAtTheHubsLimit(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	size := func(n int) int {
		st := noisyState(n)
		st.Format, st.Name, st.Lineage, st.Serial = Format, DefaultName, "00000000-0000-0000-0000-000000000000", 1
		b, _, err := encodeBody(st)
		if err != nil {
			t.Fatal(err)
		}
		return len(MarkerTag) + hubapi.TwinSize(b)
	}
	lo, hi := 1, 2000 // size(lo) fits, size(hi) does not
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; size(mid) <= hubapi.MaxPropertiesBytes {
			lo = mid
		} else {
			hi = mid
		}
	}
	t.Logf("%d resources: %d bytes; %d: %d bytes (limit %d)", lo, size(lo), hi, size(hi), hubapi.MaxPropertiesBytes)

	s := openStore(t, c, DefaultName)
	l := lock(t, s, "apply")
	defer l.Unlock(ctx)
	if _, err := l.Write(ctx, noisyState(lo)); err != nil {
		t.Fatalf("the largest state that fits (%d bytes) was refused: %v", size(lo), err)
	}
	_, err := l.Write(ctx, noisyState(hi))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "32768") || !strings.Contains(err.Error(), "named states") {
		t.Fatalf("one resource more = %v, want ErrTooLarge naming the limit and suggesting named states", err)
	}
	if st, err := s.Read(ctx); err != nil || len(st.Resources) != lo {
		t.Errorf("after the refused write the state holds %d resources (%v), want %d", len(st.Resources), err, lo)
	}
	// The hub itself refuses that body: the limit is the hub's, not a stricter one.
	big := noisyState(hi)
	big.Format, big.Name, big.Serial = Format, DefaultName, 2
	b, _, _ := encodeBody(big)
	_, err = c.UpdateTwin(ctx, DeviceID(DefaultName), hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: map[string]any{MarkerTag: b}}}, "*")
	if !hubclient.IsCode(err, 403100) {
		t.Errorf("the hub accepted or refused otherwise a body of %d bytes: %v", size(hi), err)
	}
}

// forge writes tags and desired properties on a state device directly.
func forge(t *testing.T, c *hubclient.Client, name string, tags, desired map[string]any) {
	t.Helper()
	ctx := context.Background()
	if err := c.CreateDevice(ctx, DeviceID(name)); err != nil && !hubclient.IsStatus(err, 409) {
		t.Fatal(err)
	}
	p := hubapi.TwinPatch{Tags: tags}
	if desired != nil {
		p.Properties = &hubapi.TwinProperties{Desired: desired}
	}
	if _, err := c.UpdateTwin(ctx, DeviceID(name), p, "*"); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesForeignCorruptAndNewerRecords(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	hdr := func(name string, format, serial float64) map[string]any {
		return map[string]any{MarkerTag: map[string]any{"format": format, "name": name, "lineage": "l", "serial": serial}}
	}
	// A valid state to tamper with.
	s := openStore(t, c, "good")
	l := lock(t, s, "apply")
	if _, err := l.Write(ctx, sampleState(5)); err != nil {
		t.Fatal(err)
	}
	_ = l.Unlock(ctx)
	good := body(t, c, "good")
	tamper := func(name string, change map[string]any) {
		m := map[string]any{}
		for k, v := range good {
			m[k] = v
		}
		for k, v := range change {
			m[k] = v
		}
		twin, _ := c.GetTwin(ctx, DeviceID("good"))
		h := twin["tags"].(map[string]any)[MarkerTag].(map[string]any)
		h["name"] = name
		forge(t, c, name, map[string]any{MarkerTag: h}, map[string]any{MarkerTag: m})
	}

	forge(t, c, "other-tags", map[string]any{"owner": "someone"}, nil)
	forge(t, c, "renamed", hdr("someone-else", 1, 0), nil)
	forge(t, c, "newer", hdr("newer", 2, 0), nil)
	forge(t, c, "no-body", hdr("no-body", 1, 4), nil)
	forge(t, c, "bad-header", map[string]any{MarkerTag: "x"}, nil)
	tamper("bad-sum", map[string]any{"sha256": strings.Repeat("0", 64)})
	tamper("bad-chunk", map[string]any{"p0": "!!!!" + good["p0"].(string)[4:]})
	tamper("bad-gzip", map[string]any{"p0": "bm90IGd6aXA="})
	tamper("bad-count", map[string]any{"n": 2.0})
	tamper("bad-enc", map[string]any{"enc": "zstd"})
	tamper("bad-json", map[string]any{"p0": gz(t, "{not json"), "sha256": sum("{not json"), "n": 1.0})

	for name, want := range map[string]error{
		"other-tags": ErrForeign, "renamed": ErrForeign, "newer": ErrUnsupportedFormat,
		"no-body": ErrCorrupt, "bad-header": ErrCorrupt, "bad-sum": ErrCorrupt, "bad-chunk": ErrCorrupt,
		"bad-gzip": ErrCorrupt, "bad-count": ErrCorrupt, "bad-enc": ErrCorrupt, "bad-json": ErrCorrupt,
	} {
		s := openStore(t, c, name)
		before := etag(t, c, name)
		_, err := s.Read(ctx)
		if !errors.Is(err, want) || !strings.Contains(err.Error(), DeviceID(name)) {
			t.Errorf("%s: Read = %v, want %v naming the device", name, err, want)
		}
		// Never reset: the lock is refused as well, and nothing was written.
		if _, err := s.Lock(ctx, LockRequest{Operation: "apply"}, 0); !errors.Is(err, want) {
			t.Errorf("%s: Lock = %v, want %v", name, err, want)
		}
		if after := etag(t, c, name); after != before {
			t.Errorf("%s: the twin changed (etag %s, then %s): a refused record was written", name, before, after)
		}
	}
}

// etag is the etag of the named state device's twin: it changes with every write of the twin.
func etag(t *testing.T, c *hubclient.Client, name string) string {
	t.Helper()
	twin, err := c.GetTwin(context.Background(), DeviceID(name))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := twin["etag"].(string)
	if e == "" {
		t.Fatalf("device %s's twin has no etag", DeviceID(name))
	}
	return e
}

// A device created but never written (iotplan stopped between the two calls) is an empty state,
// which the next write fills in place.
func TestCreatedButNeverWrittenIsEmpty(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	if err := c.CreateDevice(ctx, DeviceID("half")); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, c, "half")
	st, lk, err := s.ReadWithLock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Format != Format || st.Name != "half" || st.Serial != 0 || st.Lineage != "" || st.Resources == nil || len(st.Resources) != 0 || st.Apply != nil || lk != nil {
		t.Fatalf("Read = %+v, lock %v; want the empty state", st, lk)
	}
	l := lock(t, s, "apply")
	written, err := l.Write(ctx, &State{})
	if err != nil || written.Serial != 1 || uuid.Validate(written.Lineage) != nil {
		t.Fatalf("Write = %+v, %v", written, err)
	}
	if read, err := s.Read(ctx); err != nil || mustJSON(t, read) != mustJSON(t, written) {
		t.Errorf("read after the first write = %+v, %v; want %+v", read, err, written)
	}
}
