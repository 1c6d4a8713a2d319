package registry

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// compactFleet is a registry whose twins exercise the compact form: nested objects, arrays,
// deletions, replaced sections, reported writes, connection state and a module-less device.
func compactFleet(t *testing.T) *Registry {
	t.Helper()
	r, _, _ := newRegistry(t)
	var seeds []SeedDevice
	for i := range 40 {
		seeds = append(seeds, SeedDevice{
			DeviceID: fmt.Sprintf("dev-%02d", i),
			Tags:     map[string]any{"building": fmt.Sprint(40 + i%4), "floor": i % 5, "site": map[string]any{"city": []string{"Oslo", "Lima"}[i%2], "zone": i % 3}},
			Desired:  map[string]any{"interval": 30, "mode": []string{"eco", "fast"}[i%2]},
			Reported: map[string]any{"fw": fmt.Sprintf("1.%d", i%3), "temp": 20.5 + float64(i%7), "ok": i%2 == 0, "list": []any{1, "a", map[string]any{"x": i}}},
		})
	}
	if err := r.Import(seeds); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i += 3 {
		id := fmt.Sprintf("dev-%02d", i)
		if _, err := r.UpdateTwin(id, hubapi.TwinPatch{Tags: map[string]any{"site": map[string]any{"zone": nil, "rack": "r1"}},
			Properties: &hubapi.TwinProperties{Desired: map[string]any{"mode": nil, "limits": map[string]any{"max": i, "min": 0}}}}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := r.PatchReported(id, map[string]any{"temp": nil, "limits": map[string]any{"max": i}}); err != nil {
			t.Fatal(err)
		}
		if err := r.SetConnectionState(id, true, time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.ReplaceTwin("dev-05", hubapi.TwinPatch{Tags: map[string]any{"only": "this"},
		Properties: &hubapi.TwinProperties{Desired: map[string]any{"interval": 30, "new": true}}}, ""); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCompactDocumentsQueryLikeMaps runs queries over the registry's compact documents and
// over the same twins rendered as maps (what GET /twins returns): every result must be equal,
// so the compact form changes nothing a query can see.
func TestCompactDocumentsQueryLikeMaps(t *testing.T) {
	r := compactFleet(t)
	var maps []map[string]any
	r.ForEachTwin(func(d any) bool { maps = append(maps, d.(*entry).Map()); return true })
	queries := []string{
		"SELECT * FROM devices",
		"SELECT * FROM devices WHERE tags.building = '42' AND properties.reported.ok = true",
		"SELECT deviceId, tags.site, properties.desired.limits FROM devices WHERE IS_DEFINED(properties.desired.limits)",
		"SELECT properties.reported.fw AS fw, COUNT() AS n, AVG(properties.reported.temp) AS t FROM devices GROUP BY properties.reported.fw",
		"SELECT COUNT() AS n FROM devices WHERE tags.site.city = 'Oslo' AND NOT IS_DEFINED(tags.site.zone)",
		"SELECT deviceId FROM devices WHERE connectionState = 'Connected'",
		"SELECT tags, properties.desired FROM devices WHERE deviceId IN ['dev-05', 'dev-06']",
		"SELECT properties.desired.$metadata.limits.max.$lastUpdatedVersion AS v, properties.reported.$metadata.limits AS m FROM devices WHERE properties.desired.$version > 1",
		"SELECT deviceId, etag, version, lastActivityTime FROM devices WHERE properties.reported.$version >= 2",
		"SELECT COUNT() AS n FROM devices WHERE IS_OBJECT(tags.site) AND IS_OBJECT(properties.desired.$metadata)",
		"SELECT MIN(deviceId) AS lo, MAX(deviceId) AS hi FROM devices WHERE properties.desired.interval = 30",
		"SELECT properties.reported.list AS l FROM devices WHERE IS_ARRAY(properties.reported.list) AND tags.floor > 2 AND STARTSWITH(properties.reported.fw, '1.')",
		"SELECT tags.site AS s, COUNT() AS n FROM devices GROUP BY tags.site",
	}
	for _, text := range queries {
		q, err := query.ParseDialect(text, query.Extended)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		p, err := query.Compile(q)
		if err != nil {
			t.Fatalf("%s: %v", text, err)
		}
		compact, err := p.Run(r.ForEachTwin)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := p.Run(func(yield func(any) bool) {
			for _, m := range maps {
				if !yield(m) {
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if a, b := canonical(t, compact), canonical(t, plain); !reflect.DeepEqual(a, b) {
			t.Errorf("%s:\ncompact %v\nmaps    %v", text, a, b)
		}
		if len(plain) == 0 {
			t.Errorf("%s: no rows; the query tests nothing", text)
		}
	}
}

// canonical is rows through JSON, as the hub sends them.
func canonical(t *testing.T, rows []any) any {
	t.Helper()
	b, err := json.Marshal(rows)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestCompactRecordRoundTrip checks that the store's record written without maps
// (appendRecord) is the JSON of the map record, and that reading it back gives the same twin.
func TestCompactRecordRoundTrip(t *testing.T) {
	r := compactFleet(t)
	times := timeCache{}
	r.ForEachTwin(func(d any) bool {
		e := d.(*entry)
		var fast, slow twinState
		if err := json.Unmarshal(e.tw.appendRecord(nil), &fast); err != nil {
			t.Fatalf("%s: %v", e.dev.DeviceID, err)
		}
		b, _ := json.Marshal(e.tw.record())
		if err := json.Unmarshal(b, &slow); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%s: appendRecord %+v\nrecord %+v", e.dev.DeviceID, fast, slow)
		}
		back := &entry{dev: e.dev, vol: e.vol, tw: twinOf(&fast, times)}
		if a, b := back.Map(), e.Map(); !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: read back %v\nwant %v", e.dev.DeviceID, a, b)
		}
		return true
	})
}

// TestBinaryRecordRoundTrip: the store's binary twin record decodes to the twin it was made
// from, and a record cut short or changed decodes to an error, never a panic.
func TestBinaryRecordRoundTrip(t *testing.T) {
	r := compactFleet(t)
	d := newDecoder()
	r.ForEachTwin(func(x any) bool {
		e := x.(*entry)
		rec := e.tw.appendBinary(nil)
		tw, err := decodeTwin(rec, d, timeCache{})
		if err != nil {
			t.Fatalf("%s: %v", e.dev.DeviceID, err)
		}
		back := &entry{dev: e.dev, vol: e.vol, tw: tw}
		if a, b := back.Map(), e.Map(); !reflect.DeepEqual(a, b) {
			t.Fatalf("%s: decoded %v\nwant %v", e.dev.DeviceID, a, b)
		}
		for cut := 1; cut < len(rec); cut++ {
			if _, err := decodeTwin(rec[:cut], d, timeCache{}); err == nil {
				t.Fatalf("%s: a record cut at %d of %d bytes decoded", e.dev.DeviceID, cut, len(rec))
			}
		}
		return true
	})
}

// FuzzTwinRecord feeds arbitrary bytes to the store's twin decoder: an error or a twin, never
// a panic; a twin that decodes encodes back to a record that decodes to the same twin.
func FuzzTwinRecord(f *testing.F) {
	tw := twin{etag: 3, tagsV: 1, desiredV: 2, reportedV: 1, desiredAt: 7, reportedAt: 9,
		tags:    membersOf(map[string]any{"a": "x", "n": 1.5}, 0, 0, nil),
		desired: membersOf(map[string]any{"o": map[string]any{"b": true}, "arr": []any{1.0, "s"}}, 7, 2, nil)}
	f.Add(tw.appendBinary(nil))
	f.Add([]byte{recordBinary})
	f.Add([]byte(`{"etag":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeTwin(b, newDecoder(), timeCache{})
		if err != nil || len(b) == 0 || b[0] != recordBinary {
			return
		}
		again, err := decodeTwin(got.appendBinary(nil), newDecoder(), timeCache{})
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		e1, e2 := &entry{vol: &volatile{}, tw: got}, &entry{vol: &volatile{}, tw: again}
		if !reflect.DeepEqual(e1.Map(), e2.Map()) {
			t.Fatalf("round trip changed the twin")
		}
	})
}

// TestBinaryDeviceRecordRoundTrip: identities survive the binary record, including a status
// reason and edge capability, and a cut record is an error.
func TestBinaryDeviceRecordRoundTrip(t *testing.T) {
	reason := "maintenance é"
	for _, d := range []Device{
		{DeviceID: "a", GenerationID: "6301", ETag: "MQ==", Status: "enabled", StatusUpdatedTime: zeroTime,
			ConnectionState: "Connected", ConnectionStateUpdatedTime: "2026-11-25T12:00:00.0000000Z", LastActivityTime: zeroTime,
			Authentication: Authentication{SymmetricKey: SymmetricKey{PrimaryKey: "cA==", SecondaryKey: "cw=="}, Type: "sas"}},
		{DeviceID: "b'(x)", Status: "disabled", StatusReason: &reason, CloudToDeviceMessageCount: 7, Capabilities: Capabilities{IotEdge: true}},
	} {
		rec := appendDeviceRecord(nil, d, 42)
		got, err := decodeDevice(rec, newDecoder())
		if err != nil || got.ETagN != 42 || !reflect.DeepEqual(got.Device, d) {
			t.Fatalf("decoded %+v, %v; want %+v", got, err, d)
		}
		for cut := 1; cut < len(rec); cut++ {
			if _, err := decodeDevice(rec[:cut], newDecoder()); err == nil {
				t.Fatalf("a record cut at %d of %d bytes decoded", cut, len(rec))
			}
		}
	}
}
