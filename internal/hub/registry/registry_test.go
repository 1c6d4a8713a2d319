package registry

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

type desiredCall struct {
	id      string
	patch   map[string]any
	version int64
}

func openDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func newRegistry(t testing.TB) (*Registry, *[]desiredCall, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hub.db")
	db := openDB(t, path)
	t.Cleanup(func() { db.Close() })
	var calls []desiredCall
	c := &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	r, err := Open(db, Options{Now: c.Now, OnDesired: func(id string, p map[string]any, v int64) {
		calls = append(calls, desiredCall{id, p, v})
	}})
	if err != nil {
		t.Fatal(err)
	}
	return r, &calls, path
}

// j decodes JSON text for expectations and patches (numbers become float64 like the store's).
func j(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

func path(doc map[string]any, keys ...string) any {
	var v any = doc
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func stripMeta(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if k != "$metadata" && k != "$version" {
			out[k] = v
		}
	}
	return out
}

func mustCode(t *testing.T, err error, code huberr.Code) {
	t.Helper()
	if !huberr.Is(err, code) {
		t.Fatalf("error = %v, want code %d", err, code)
	}
}

func create(t *testing.T, r *Registry, id string) Device {
	t.Helper()
	d, err := r.CreateOrUpdateDevice(Device{DeviceID: id}, "")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCreateDeviceAndNewTwin(t *testing.T) {
	r, _, _ := newRegistry(t)
	d := create(t, r, "door-1")
	if d.Status != "enabled" || d.ConnectionState != "Disconnected" || d.Authentication.Type != "sas" || d.ETag != "MQ==" {
		t.Fatalf("device = %+v", d)
	}
	p, s, err := r.DeviceKeys("door-1")
	if err != nil || p == "" || s == "" || p == s || p != d.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("keys %q %q %v", p, s, err)
	}
	doc, err := r.GetTwin("door-1")
	if err != nil {
		t.Fatal(err)
	}
	if doc["etag"] != "AAAAAAAAAAE=" || doc["version"] != 2.0 || doc["deviceEtag"] != "MQ==" || doc["connectionState"] != "Disconnected" {
		t.Fatalf("twin = %v", doc)
	}
	if path(doc, "properties", "desired", "$version") != 1.0 || path(doc, "properties", "reported", "$version") != 1.0 {
		t.Fatalf("section versions: %v", doc["properties"])
	}
	_, err = r.CreateOrUpdateDevice(Device{DeviceID: "door-1"}, "")
	mustCode(t, err, huberr.DeviceAlreadyExists)
	_, err = r.CreateOrUpdateDevice(Device{DeviceID: "bad/id"}, "")
	mustCode(t, err, huberr.ArgumentInvalid)
	_, err = r.GetTwin("nope")
	mustCode(t, err, huberr.DeviceNotFound)
	_, err = r.GetDevice("nope")
	mustCode(t, err, huberr.DeviceNotFound)
}

func TestUpdateDeviceIfMatch(t *testing.T) {
	r, _, _ := newRegistry(t)
	d := create(t, r, "d1")
	_, err := r.CreateOrUpdateDevice(Device{DeviceID: "d1", Status: "disabled"}, `"bm9wZQ=="`)
	mustCode(t, err, huberr.PreconditionFailed)
	u, err := r.CreateOrUpdateDevice(Device{DeviceID: "d1", Status: "disabled"}, `"`+d.ETag+`"`)
	if err != nil {
		t.Fatal(err)
	}
	if u.Status != "disabled" || u.ETag == d.ETag || u.Authentication.SymmetricKey != d.Authentication.SymmetricKey {
		t.Fatalf("updated = %+v", u)
	}
	_, err = r.CreateOrUpdateDevice(Device{DeviceID: "missing"}, "*")
	mustCode(t, err, huberr.DeviceNotFound)
	mustCode(t, r.DeleteDevice("d1", d.ETag), huberr.PreconditionFailed) // stale etag
	if err := r.DeleteDevice("d1", "W/\""+u.ETag+"\""); err != nil {
		t.Fatal(err)
	}
	mustCode(t, r.DeleteDevice("d1", ""), huberr.DeviceNotFound)
	if r.DeviceCount() != 0 || r.Has("d1") {
		t.Fatal("device still there")
	}
}

func TestMergePatchNestedAndNull(t *testing.T) {
	r, calls, _ := newRegistry(t)
	create(t, r, "d1")
	p1 := hubapi.TwinPatch{
		Tags:       j(t, `{"building":"42","loc":{"floor":3,"room":"a"}}`),
		Properties: &hubapi.TwinProperties{Desired: j(t, `{"a":{"b":1,"c":{"d":true}},"x":"y","arr":[1,2]}`)},
	}
	doc, err := r.UpdateTwin("d1", p1, "")
	if err != nil {
		t.Fatal(err)
	}
	p2 := hubapi.TwinPatch{
		Tags: j(t, `{"loc":{"room":null,"wing":"w"}}`),
		Properties: &hubapi.TwinProperties{
			Desired:  j(t, `{"a":{"c":{"d":null,"e":"new"}},"x":null,"arr":[3],"n":{"m":null}}`),
			Reported: j(t, `{"ignored":1}`), // read-only in a service patch
		},
	}
	doc2, err := r.UpdateTwin("d1", p2, "*")
	if err != nil {
		t.Fatal(err)
	}
	if want := j(t, `{"building":"42","loc":{"floor":3,"wing":"w"}}`); !reflect.DeepEqual(doc2["tags"], want) {
		t.Errorf("tags = %v, want %v", doc2["tags"], want)
	}
	desired := stripMeta(path(doc2, "properties", "desired").(map[string]any))
	if want := j(t, `{"a":{"b":1,"c":{"e":"new"}},"arr":[3],"n":{}}`); !reflect.DeepEqual(desired, want) {
		t.Errorf("desired = %v, want %v", desired, want)
	}
	if path(doc2, "properties", "reported", "ignored") != nil {
		t.Error("service patch wrote reported properties")
	}
	// The first document returned is a copy: the second write did not change it.
	if path(doc, "properties", "desired", "x") != "y" {
		t.Error("returned document was mutated by a later write")
	}
	// Versions: 2 desired writes and 2 tag writes → desired $version 3, version 3+1+2, etag 3.
	if path(doc2, "properties", "desired", "$version") != 3.0 || doc2["version"] != 6.0 || doc2["etag"] != "AAAAAAAAAAM=" {
		t.Errorf("versions: desired %v version %v etag %v", path(doc2, "properties", "desired", "$version"), doc2["version"], doc2["etag"])
	}
	if len(*calls) != 2 || (*calls)[1].version != 3 || !reflect.DeepEqual((*calls)[1].patch, p2.Properties.Desired) {
		t.Errorf("OnDesired calls = %+v", *calls)
	}
	// A tags-only patch does not notify and leaves desired $version alone.
	doc3, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: j(t, `{"t":1}`)}, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(*calls) != 2 || path(doc3, "properties", "desired", "$version") != 3.0 || doc3["version"] != 7.0 {
		t.Errorf("tags-only patch: calls %d, doc %v", len(*calls), doc3["version"])
	}
}

func TestMetadata(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d1") // clock tick 1: 12:00:01
	doc, err := r.UpdateTwin("d1", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: j(t, `{"a":{"b":1,"c":2},"x":1}`)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	t1 := "2026-11-25T12:00:02.0000000Z"
	meta := path(doc, "properties", "desired", "$metadata").(map[string]any)
	want := j(t, `{"$lastUpdated":"`+t1+`","$lastUpdatedVersion":2,
		"a":{"$lastUpdated":"`+t1+`","$lastUpdatedVersion":2,
		     "b":{"$lastUpdated":"`+t1+`","$lastUpdatedVersion":2},
		     "c":{"$lastUpdated":"`+t1+`","$lastUpdatedVersion":2}},
		"x":{"$lastUpdated":"`+t1+`","$lastUpdatedVersion":2}}`)
	if !reflect.DeepEqual(meta, want) {
		t.Fatalf("metadata = %v\nwant %v", meta, want)
	}
	doc, err = r.UpdateTwin("d1", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: j(t, `{"a":{"c":3},"x":null}`)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	t2 := "2026-11-25T12:00:03.0000000Z"
	meta = path(doc, "properties", "desired", "$metadata").(map[string]any)
	want = j(t, `{"$lastUpdated":"`+t2+`","$lastUpdatedVersion":3,
		"a":{"$lastUpdated":"`+t2+`","$lastUpdatedVersion":3,
		     "b":{"$lastUpdated":"`+t1+`","$lastUpdatedVersion":2},
		     "c":{"$lastUpdated":"`+t2+`","$lastUpdatedVersion":3}}}`)
	if !reflect.DeepEqual(meta, want) {
		t.Fatalf("metadata after second patch = %v\nwant %v", meta, want)
	}
	// Reported metadata has $lastUpdated only; reported writes leave etag alone but bump version.
	v, err := r.PatchReported("d1", j(t, `{"fw":{"v":"1.0"}}`))
	if err != nil || v != 2 {
		t.Fatalf("PatchReported = %d, %v", v, err)
	}
	doc, _ = r.GetTwin("d1")
	t3 := "2026-11-25T12:00:04.0000000Z"
	rmeta := path(doc, "properties", "reported", "$metadata").(map[string]any)
	want = j(t, `{"$lastUpdated":"`+t3+`","fw":{"$lastUpdated":"`+t3+`","v":{"$lastUpdated":"`+t3+`"}}}`)
	if !reflect.DeepEqual(rmeta, want) {
		t.Fatalf("reported metadata = %v\nwant %v", rmeta, want)
	}
	if doc["etag"] != "AAAAAAAAAAM=" || doc["version"] != 5.0 {
		t.Fatalf("etag %v version %v", doc["etag"], doc["version"])
	}
	_, err = r.PatchReported("d1", j(t, `{"$version":3}`))
	mustCode(t, err, huberr.ArgumentInvalid)
}

func TestTwinIfMatch(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d1")
	patch := hubapi.TwinPatch{Tags: j(t, `{"a":1}`)}
	for _, im := range []string{`"AAAAAAAAAAE="`, `AAAAAAAAAAI=`, `W/"AAAAAAAAAAM="`, `*`, `"*"`, ``} {
		if _, err := r.UpdateTwin("d1", patch, im); err != nil {
			t.Fatalf("If-Match %s: %v", im, err)
		}
	}
	_, err := r.UpdateTwin("d1", patch, `"AAAAAAAAAAE="`)
	mustCode(t, err, huberr.PreconditionFailed)
	_, err = r.ReplaceTwin("d1", patch, `"AAAAAAAAAAE="`)
	mustCode(t, err, huberr.PreconditionFailed)
	_, err = r.UpdateTwin("nope", patch, "")
	mustCode(t, err, huberr.DeviceNotFound)
}

func TestReplaceTwin(t *testing.T) {
	r, calls, _ := newRegistry(t)
	create(t, r, "d1")
	if _, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: j(t, `{"old":1}`), Properties: &hubapi.TwinProperties{Desired: j(t, `{"keep":{"k":1},"drop":2}`)}}, ""); err != nil {
		t.Fatal(err)
	}
	doc, err := r.ReplaceTwin("d1", hubapi.TwinPatch{Tags: j(t, `{"new":1}`), Properties: &hubapi.TwinProperties{Desired: j(t, `{"keep":{"k":1},"add":null,"z":true}`)}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(doc["tags"], j(t, `{"new":1}`)) {
		t.Errorf("tags = %v", doc["tags"])
	}
	desired := path(doc, "properties", "desired").(map[string]any)
	if !reflect.DeepEqual(stripMeta(desired), j(t, `{"keep":{"k":1},"z":true}`)) {
		t.Errorf("desired = %v", desired)
	}
	meta := desired["$metadata"].(map[string]any)
	if _, ok := meta["drop"]; ok {
		t.Error("metadata of a removed key survived")
	}
	if path(meta, "keep", "$lastUpdatedVersion") != 2.0 || path(meta, "z", "$lastUpdatedVersion") != 3.0 {
		t.Errorf("metadata = %v", meta)
	}
	last := (*calls)[len(*calls)-1]
	if last.version != 3 || !reflect.DeepEqual(last.patch, j(t, `{"keep":{"k":1},"z":true}`)) {
		t.Errorf("OnDesired after replace = %+v", last)
	}
}

func TestPatchValidation(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d1")
	deep := map[string]any{}
	cur := deep
	for range 11 {
		n := map[string]any{}
		cur["k"] = n
		cur = n
	}
	for _, p := range []hubapi.TwinPatch{
		{Tags: j(t, `{"a.b":1}`)},
		{Tags: j(t, `{"a b":1}`)},
		{Properties: &hubapi.TwinProperties{Desired: j(t, `{"$x":1}`)}},
		{Properties: &hubapi.TwinProperties{Desired: j(t, `{"a":{"$x":1}}`)}},
		{Properties: &hubapi.TwinProperties{Desired: deep}},
	} {
		_, err := r.UpdateTwin("d1", p, "")
		mustCode(t, err, huberr.ArgumentInvalid)
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	r, _, dbPath := newRegistry(t)
	create(t, r, "b")
	create(t, r, "a")
	if err := r.Import([]SeedDevice{{DeviceID: "c", Tags: map[string]any{"n": 1}, Desired: map[string]any{"x": map[string]any{"y": "z"}}, Reported: map[string]any{"x": 2}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdateTwin("a", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: j(t, `{"floor":3}`)}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PatchReported("a", j(t, `{"floor":3}`)); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := r.SetConnectionState("b", true, at); err != nil {
		t.Fatal(err)
	}
	var before []map[string]any
	r.ForEachTwin(func(x any) bool {
		d := x.(*entry).Map()
		before = append(before, d)
		return true
	})
	// Connection state is volatile; Flush (the hub calls it on Close) keeps lastActivityTime.
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	r.db.Close()

	db := openDB(t, dbPath)
	defer db.Close()
	r2, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var after []map[string]any
	r2.ForEachTwin(func(x any) bool {
		d := x.(*entry).Map()
		after = append(after, d)
		return true
	})
	if len(after) != 3 || after[0]["deviceId"] != "a" || after[2]["deviceId"] != "c" {
		t.Fatalf("order after reopen: %v", after)
	}
	// No session survives a restart: "b" was Connected and is now Disconnected, with its
	// last activity kept.
	if after[1]["connectionState"] != "Disconnected" || after[1]["lastActivityTime"] != "2026-01-02T03:04:05.0000000Z" {
		t.Fatalf("connection state after restart: %v", after[1])
	}
	d, _ := r2.GetDevice("b")
	if d.ConnectionState != "Disconnected" || d.ConnectionStateUpdatedTime == "2026-01-02T03:04:05.0000000Z" {
		t.Fatalf("identity = %+v", d)
	}
	before[1]["connectionState"] = "Disconnected"
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("documents differ after reopen:\n%v\n%v", before, after)
	}
	if path(after[2], "tags", "n") != 1.0 || path(after[2], "properties", "desired", "x", "y") != "z" {
		t.Fatalf("seeded twin = %v", after[2])
	}
}

func TestImportAllOrNothing(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d5")
	var seeds []SeedDevice
	for i := range 10 {
		seeds = append(seeds, SeedDevice{DeviceID: fmt.Sprintf("d%d", i)})
	}
	mustCode(t, r.Import(seeds), huberr.DeviceAlreadyExists)
	if r.DeviceCount() != 1 {
		t.Fatalf("partial import: %d devices", r.DeviceCount())
	}
	mustCode(t, r.Import([]SeedDevice{{DeviceID: "x"}, {DeviceID: "x"}}), huberr.DeviceAlreadyExists)
	mustCode(t, r.Import([]SeedDevice{{DeviceID: "ok"}, {DeviceID: "bad id"}}), huberr.ArgumentInvalid)
	if err := r.Import(seeds[:5]); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, d := range r.ListDevices(0) {
		ids = append(ids, d.DeviceID)
	}
	if !reflect.DeepEqual(ids, []string{"d0", "d1", "d2", "d3", "d4", "d5"}) {
		t.Fatalf("ids = %v", ids)
	}
	if n := len(r.ListDevices(2)); n != 2 {
		t.Fatalf("ListDevices(2) = %d", n)
	}
}

// ForEachTwin crosses chunk boundaries, stops when asked, and tolerates writes from fn.
func TestForEachTwinChunks(t *testing.T) {
	r, _, _ := newRegistry(t)
	var seeds []SeedDevice
	n := forEachChunk*2 + 7
	for i := range n {
		seeds = append(seeds, SeedDevice{DeviceID: fmt.Sprintf("dev-%05d", i)})
	}
	if err := r.Import(seeds); err != nil {
		t.Fatal(err)
	}
	count, last := 0, ""
	r.ForEachTwin(func(x any) bool {
		d := x.(*entry).Map()

		id := d["deviceId"].(string)
		if id <= last {
			t.Fatalf("out of order: %s after %s", id, last)
		}
		last = id
		count++
		if count == 3 { // a write during the scan must not deadlock
			if _, err := r.PatchReported(id, map[string]any{"seen": true}); err != nil {
				t.Fatal(err)
			}
		}
		return true
	})
	if count != n {
		t.Fatalf("visited %d of %d", count, n)
	}
	count = 0
	r.ForEachTwin(func(any) bool { count++; return count < 600 })
	if count != 600 {
		t.Fatalf("did not stop: %d", count)
	}
}

// BenchmarkImport100k seeds 100,000 devices into a new store.
func BenchmarkImport100k(b *testing.B) {
	const total = 100_000
	for range b.N {
		r, db := benchRegistry(b, filepath.Join(b.TempDir(), "hub.db"))
		seedDoors(b, r, total)
		if n := r.DeviceCount(); n != total {
			b.Fatalf("%d devices", n)
		}
		db.Close()
	}
}

// Devices seeded together share interned keys and values and constant maps; a write to one
// twin must never show through another (copy-on-write).
func TestSharedNodesAreCopyOnWrite(t *testing.T) {
	r, _, _ := newRegistry(t)
	if err := r.Import([]SeedDevice{
		{DeviceID: "a", Desired: map[string]any{"x": map[string]any{"y": 1}, "z": 1}, Reported: map[string]any{"x": 1}},
		{DeviceID: "b", Desired: map[string]any{"x": map[string]any{"y": 1}, "z": 1}, Reported: map[string]any{"x": 1}},
	}); err != nil {
		t.Fatal(err)
	}
	before, _ := r.GetTwin("b")
	if _, err := r.UpdateTwin("a", hubapi.TwinPatch{Tags: j(t, `{"t":1}`), Properties: &hubapi.TwinProperties{Desired: j(t, `{"x":{"y":2,"w":3},"z":null}`)}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PatchReported("a", j(t, `{"x":{"deep":true}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReplaceTwin("a", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: j(t, `{"q":1}`)}}, ""); err != nil {
		t.Fatal(err)
	}
	after, _ := r.GetTwin("b")
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("writes to a changed b:\n%v\n%v", before, after)
	}
	a, _ := r.GetTwin("a")
	// (The replace emptied a's tags and desired, as PUT does.)
	if path(a, "properties", "reported", "x", "deep") != true || path(a, "properties", "desired", "q") != 1.0 || len(a["tags"].(map[string]any)) != 0 {
		t.Fatalf("a = %v", a)
	}
	// Mutating a returned copy does not reach the store either.
	path(a, "properties", "desired").(map[string]any)["q"] = "mutated"
	path(a, "x509Thumbprint").(map[string]any)["primaryThumbprint"] = "x"
	a["tags"].(map[string]any)["t"] = "x"
	again, _ := r.GetTwin("a")
	b2, _ := r.GetTwin("b")
	if path(again, "properties", "desired", "q") != 1.0 || path(b2, "x509Thumbprint", "primaryThumbprint") != nil || len(b2["tags"].(map[string]any)) != 0 {
		t.Fatal("a returned document aliases the store")
	}
}

// TestOnTags: tag changes by PATCH and PUT are reported with the tags version; a desired-only
// patch and a module's tags are not.
func TestOnTags(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "hub.db"))
	t.Cleanup(func() { db.Close() })
	type call struct {
		id      string
		patch   map[string]any
		version int64
	}
	var calls []call
	r, err := Open(db, Options{OnTags: func(id string, p map[string]any, v int64) { calls = append(calls, call{id, p, v}) }})
	if err != nil {
		t.Fatal(err)
	}
	create(t, r, "d1")
	if _, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: j(t, `{"a":1,"b":null}`)}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdateTwin("d1", hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: j(t, `{"x":1}`)}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReplaceTwin("d1", hubapi.TwinPatch{Tags: j(t, `{"c":"z"}`)}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "m"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.UpdateModuleTwin("d1", "m", hubapi.TwinPatch{Tags: j(t, `{"m":1}`)}, ""); err != nil {
		t.Fatal(err)
	}
	want := []call{{"d1", j(t, `{"a":1,"b":null}`), 1}, {"d1", j(t, `{"c":"z"}`), 2}}
	if !reflect.DeepEqual(calls, want) {
		t.Fatalf("OnTags calls = %+v, want %+v", calls, want)
	}
}

// TestWriteMany: ApplyPatches and PatchReportedBatch write each device as the one-device calls
// do, report errors per device, notify, and redo a twin written while they computed.
func TestWriteMany(t *testing.T) {
	r, calls, _ := newRegistry(t)
	for _, id := range []string{"a", "b", "c"} {
		create(t, r, id)
	}
	p, err := PreparePatch(hubapi.TwinPatch{Properties: &hubapi.TwinProperties{Desired: j(t, `{"floor":7}`)}})
	if err != nil {
		t.Fatal(err)
	}
	errs := r.ApplyPatches([]string{"a", "nope", "c"}, p)
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("errs %v", errs)
	}
	mustCode(t, errs[1], huberr.DeviceNotFound)
	for _, id := range []string{"a", "c"} {
		tw, _ := r.GetTwin(id)
		if path(tw, "properties", "desired", "floor") != 7.0 || path(tw, "properties", "desired", "$version") != 2.0 {
			t.Errorf("%s after ApplyPatches: %v", id, tw["properties"])
		}
	}
	if len(*calls) != 2 {
		t.Errorf("OnDesired calls %+v", *calls)
	}
	errs = r.PatchReportedBatch([]string{"a", "b", "c"}, []map[string]any{{"t": 1.0}, {"bad$key": 1.0}, {"t": 3.0}})
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("errs %v", errs)
	}
	mustCode(t, errs[1], huberr.ArgumentInvalid)
	if tw, _ := r.GetTwin("c"); path(tw, "properties", "reported", "t") != 3.0 {
		t.Errorf("c reported %v", tw["properties"])
	}
	// A twin written while writeMany computed its change is written again, from the new
	// version, and keeps the other write.
	raced := false
	errs = r.writeMany([]string{"b"}, make([]error, 1), func(_ int, e *entry, now int64) (patchChanges, error) {
		if !raced {
			raced = true
			if _, err := r.UpdateTwin("b", hubapi.TwinPatch{Tags: j(t, `{"meanwhile":true}`)}, ""); err != nil {
				t.Fatal(err)
			}
		}
		return patchChanges{}, mergeReported(e, j(t, `{"late":1}`), now)
	}, func(int) error { _, err := r.PatchReported("b", j(t, `{"late":1}`)); return err })
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	tw, _ := r.GetTwin("b")
	if path(tw, "tags", "meanwhile") != true || path(tw, "properties", "reported", "late") != 1.0 {
		t.Errorf("b after a raced write: tags %v reported %v", tw["tags"], path(tw, "properties", "reported"))
	}
}
