package registry

import (
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

func TestModulesCRUDAndTwins(t *testing.T) {
	r, calls, dbPath := newRegistry(t)
	create(t, r, "d1")
	create(t, r, "d10") // shares the "d1" prefix: its modules must not show under d1

	_, err := r.CreateOrUpdateModule(Module{DeviceID: "nope", ModuleID: "m"}, "")
	mustCode(t, err, huberr.DeviceNotFound)
	m, err := r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "m1", ManagedBy: "me"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Authentication.SymmetricKey.PrimaryKey == "" || m.ETag == "" || m.ConnectionState != "Disconnected" || m.ManagedBy != "me" {
		t.Fatalf("module = %+v", m)
	}
	_, err = r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "m1"}, "")
	mustCode(t, err, ModuleAlreadyExistsOnDevice)
	if _, err := r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "m0"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateOrUpdateModule(Module{DeviceID: "d10", ModuleID: "x"}, ""); err != nil {
		t.Fatal(err)
	}
	_, err = r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "bad/id"}, "")
	mustCode(t, err, huberr.ArgumentInvalid)

	list, err := r.ListModules("d1")
	if err != nil || len(list) != 2 || list[0].ModuleID != "m0" || list[1].ModuleID != "m1" {
		t.Fatalf("ListModules = %+v, %v", list, err)
	}
	_, err = r.GetModule("d1", "zz")
	mustCode(t, err, huberr.ModuleNotFound)
	_, err = r.GetModule("zz", "m1")
	mustCode(t, err, huberr.DeviceNotFound)

	// Update with a stale etag, then the right one.
	_, err = r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "m1"}, `"bogus"`)
	mustCode(t, err, huberr.PreconditionFailed)
	m2, err := r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "m1", ManagedBy: "other"}, `"`+m.ETag+`"`)
	if err != nil || m2.ETag == m.ETag || m2.ManagedBy != "other" || m2.Authentication.SymmetricKey.PrimaryKey != m.Authentication.SymmetricKey.PrimaryKey {
		t.Fatalf("update = %+v, %v", m2, err)
	}
	_, err = r.CreateOrUpdateModule(Module{DeviceID: "d1", ModuleID: "nope"}, "*")
	mustCode(t, err, huberr.ModuleNotFound)

	// Module twin: its own etag/versions, limits, no desired notification.
	tw, err := r.GetModuleTwin("d1", "m1")
	if err != nil || tw["moduleId"] != "m1" || tw["deviceId"] != "d1" || tw["capabilities"] != nil {
		t.Fatalf("module twin = %v, %v", tw, err)
	}
	n := len(*calls)
	tw2, err := r.UpdateModuleTwin("d1", "m1", hubapi.TwinPatch{Tags: j(t, `{"role":"edge"}`), Properties: &hubapi.TwinProperties{Desired: j(t, `{"rate":5}`)}}, "")
	if err != nil || path(tw2, "properties", "desired", "rate") != 5.0 || tw2["etag"] == tw["etag"] {
		t.Fatalf("patched module twin = %v, %v", tw2, err)
	}
	if len(*calls) != n {
		t.Fatal("a module twin change notified the device")
	}
	_, err = r.UpdateModuleTwin("d1", "m1", desiredPatch(map[string]any{"a": 1.0}), `"`+tw["etag"].(string)+`"`)
	mustCode(t, err, huberr.PreconditionFailed)
	_, err = r.UpdateModuleTwin("d1", "m1", desiredPatch(map[string]any{"$a": 1.0}), "")
	mustCode(t, err, huberr.ArgumentInvalid)
	if _, err := r.ReplaceModuleTwin("d1", "m1", hubapi.TwinPatch{Tags: j(t, `{"x":1}`)}, ""); err != nil {
		t.Fatal(err)
	}
	if v, err := r.PatchModuleReported("d1", "m1", j(t, `{"up":true}`)); err != nil || v != 2 {
		t.Fatalf("reported = %d, %v", v, err)
	}
	// The device twin is untouched.
	dt, _ := r.GetTwin("d1")
	if len(dt["tags"].(map[string]any)) != 0 {
		t.Fatalf("device twin changed: %v", dt)
	}

	var seen []string
	r.ForEachModuleTwin(func(x any) bool {
		d := x.(*entry).Map()

		seen = append(seen, d["deviceId"].(string)+"/"+d["moduleId"].(string))
		return true
	})
	if len(seen) != 3 || seen[0] != "d1/m0" || seen[1] != "d1/m1" || seen[2] != "d10/x" {
		t.Fatalf("ForEachModuleTwin = %v", seen)
	}

	// Persisted.
	r.db.Close()
	db := openDB(t, dbPath)
	defer db.Close()
	r2, err := Open(db, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tw3, err := r2.GetModuleTwin("d1", "m1")
	if err != nil || path(tw3, "tags", "x") != 1.0 || path(tw3, "properties", "reported", "up") != true || tw3["etag"] == nil {
		t.Fatalf("after reopen: %v %v", tw3, err)
	}
	if r2.ModuleCount() != 3 {
		t.Fatalf("ModuleCount = %d", r2.ModuleCount())
	}

	// Delete one module, then the device with the other: its modules go too, d10's stay.
	mustCode(t, r2.DeleteModule("d1", "m0", `"bogus"`), huberr.PreconditionFailed)
	if err := r2.DeleteModule("d1", "m0", "*"); err != nil {
		t.Fatal(err)
	}
	mustCode(t, r2.DeleteModule("d1", "m0", "*"), huberr.ModuleNotFound)
	if err := r2.DeleteDevice("d1", "*"); err != nil {
		t.Fatal(err)
	}
	_, err = r2.GetModuleTwin("d1", "m1")
	mustCode(t, err, huberr.DeviceNotFound)
	if r2.ModuleCount() != 1 {
		t.Fatalf("ModuleCount after delete = %d", r2.ModuleCount())
	}
	var left int
	_ = db.View(func(tx *bbolt.Tx) error { left = tx.Bucket(bucketModules).Stats().KeyN; return nil })
	if left != 1 {
		t.Fatalf("modules bucket holds %d records, want 1", left)
	}
}

// TestConnectionStateIsVolatile: connects and activity change memory only (no store write),
// Flush writes the dirty devices in one go, Open marks everyone Disconnected.
func TestConnectionStateIsVolatile(t *testing.T) {
	r, _, _ := newRegistry(t)
	create(t, r, "d1")
	create(t, r, "d2")
	stored := func(id string) Device {
		var rec deviceRecord
		_ = r.db.View(func(tx *bbolt.Tx) error {
			var err error
			rec, err = decodeDevice(tx.Bucket(bucketDevices).Get([]byte(id)), newDecoder())
			return err
		})
		return rec.Device
	}
	writes := func() int64 { st := r.db.Stats(); return st.TxStats.GetWrite() }
	before := writes()
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for i := range 100 {
		if err := r.SetConnectionState("d1", i%2 == 0, at); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.RecordActivity("d1", at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	mustCode(t, r.RecordActivity("nope", at), huberr.DeviceNotFound)
	if w := writes() - before; w != 0 {
		t.Fatalf("%d store writes for connection state", w)
	}
	if s := stored("d1"); s.LastActivityTime != zeroTime {
		t.Fatalf("stored before Flush: %+v", s)
	}
	tw, _ := r.GetTwin("d1")
	d, _ := r.GetDevice("d1")
	if tw["connectionState"] != "Disconnected" || tw["lastActivityTime"] != "2026-03-04T05:07:07.0000000Z" ||
		d.ConnectionStateUpdatedTime != "2026-03-04T05:06:07.0000000Z" || d.LastActivityTime != tw["lastActivityTime"] {
		t.Fatalf("twin %v / device %+v", tw, d)
	}
	if err := r.SetConnectionState("d2", true, at); err != nil {
		t.Fatal(err)
	}
	if n := r.ConnectedDeviceCount(); n != 1 {
		t.Fatalf("ConnectedDeviceCount = %d", n)
	}
	// The shared document of a reader is not changed by a later write.
	// Its values are a snapshot; connection state is live (it lives outside the document).
	var held *entry
	r.ForEachTwin(func(doc any) bool { held = doc.(*entry); return false })
	if _, err := r.UpdateTwin("d1", hubapi.TwinPatch{Tags: map[string]any{"late": "yes"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := held.Map()["tags"].(map[string]any)["late"]; ok {
		t.Fatal("a published document was mutated")
	}
	_ = r.SetConnectionState("d1", false, at)
	if cs, _ := held.Field("connectionState"); cs != "Disconnected" {
		t.Fatalf("connection state read through a held document: %v", cs)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	var flushed []byte
	_ = r.db.View(func(tx *bbolt.Tx) error { flushed = tx.Bucket(bucketVolatile).Get([]byte("d1")); return nil })
	connected, connAt, activeAt, ok := decodeVolatile(flushed)
	if !ok || connected || connAt != at.UnixNano() || activeAt != at.UnixNano() {
		t.Fatalf("stored after Flush: %v %v %v %v", connected, connAt, activeAt, ok)
	}
	// A second Flush has nothing to write.
	before = writes()
	if err := r.Flush(); err != nil || writes() != before {
		t.Fatalf("second Flush: %v, %d writes", err, writes()-before)
	}
}
