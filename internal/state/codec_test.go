package state

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func gz(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// twinOf builds the twin document a hub would return for st (header and body).
func twinOf(t testing.TB, st *State, lock *LockInfo) map[string]any {
	t.Helper()
	b, _, err := encodeBody(st)
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := remarshal(header{Format: st.Format, Name: st.Name, Lineage: st.Lineage, Serial: st.Serial, Lock: lock}, &h); err != nil {
		t.Fatal(err)
	}
	var twin map[string]any
	doc := map[string]any{"deviceId": DeviceID(st.Name), "etag": "AAAAAAAAAAE=",
		"tags": map[string]any{MarkerTag: h}, "properties": map[string]any{"desired": map[string]any{MarkerTag: b, "$version": 3}}}
	if err := remarshal(doc, &twin); err != nil { // float64 numbers, as hubclient.GetTwin returns
		t.Fatal(err)
	}
	return twin
}

func TestDecodeRoundTrip(t *testing.T) {
	st := sampleState(50)
	st.Format, st.Name, st.Lineage, st.Serial = Format, "prod", "7b0a3c5e-1111-4a4a-9b9b-000000000000", 9
	rec, err := decodeTwin(DeviceID("prod"), "prod", twinOf(t, st, &LockInfo{ID: "x", PID: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if mustJSON(t, rec.state) != mustJSON(t, st) || rec.hdr.Lock == nil || rec.hdr.Lock.ID != "x" || rec.etag != "AAAAAAAAAAE=" {
		t.Errorf("decoded %+v, header %+v", rec.state, rec.hdr)
	}
	if _, err := decodeTwin(DeviceID("prod"), "dev", twinOf(t, st, nil)); !errors.Is(err, ErrForeign) {
		t.Errorf("another state's name = %v, want ErrForeign", err)
	}
}

func TestMergePatch(t *testing.T) {
	old := map[string]any{"n": 3.0, "p0": "a", "p1": "b", "p2": "c", "lock": map[string]any{"id": "1", "pid": 2.0}, "same": "s"}
	new := map[string]any{"n": 1.0, "p0": "z", "same": "s", "lock": map[string]any{"id": "2", "pid": 2.0}}
	want := map[string]any{"n": 1.0, "p0": "z", "p1": nil, "p2": nil, "lock": map[string]any{"id": "2"}}
	if got := mergePatch(old, new); !reflect.DeepEqual(got, want) {
		t.Errorf("mergePatch = %v, want %v", got, want)
	}
	if got := mergePatch(map[string]any{"lock": map[string]any{"id": "1"}}, map[string]any{}); !reflect.DeepEqual(got, map[string]any{"lock": nil}) {
		t.Errorf("removing the lock: %v", got)
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"abc", 5, "abc"}, {"abcdef", 3, "abc"}, {"aé", 2, "a"}, {"aé", 3, "aé"}, {"€€", 4, "€"}} {
		if got := clip(tc.in, tc.n); got != tc.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// FuzzDecode feeds arbitrary twin documents to the decoder: it must never panic, every error
// must be one of the sentinels (never a silent reset), and a state it accepts must survive
// encoding and decoding again unchanged. The seeds in testdata/fuzz/FuzzDecode are a valid
// state, a locked one, and broken variants.
func FuzzDecode(f *testing.F) {
	st := sampleState(3)
	st.Format, st.Name, st.Lineage, st.Serial = Format, DefaultName, "7b0a3c5e-1111-4a4a-9b9b-000000000000", 2
	valid, _ := json.Marshal(twinOf(f, st, nil))
	f.Add(valid)
	f.Add([]byte(`{"etag":"e","tags":{},"properties":{"desired":{}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var twin map[string]any
		if json.Unmarshal(data, &twin) != nil {
			return
		}
		rec, err := decodeTwin(DeviceID(DefaultName), DefaultName, twin)
		if err != nil {
			if !errors.Is(err, ErrForeign) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupportedFormat) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if rec.state == nil || rec.state.Name != DefaultName || rec.state.Resources == nil {
			t.Fatalf("accepted a state without its name or resources: %+v", rec.state)
		}
		if rec.hdr == nil {
			return
		}
		again, err := decodeTwin(DeviceID(DefaultName), DefaultName, twinOf(t, rec.state, rec.hdr.Lock))
		if err != nil {
			t.Fatalf("re-encoding an accepted state: %v", err)
		}
		if mustJSON(t, again.state) != mustJSON(t, rec.state) {
			t.Fatalf("state changed through encoding:\n%s\n%s", mustJSON(t, rec.state), mustJSON(t, again.state))
		}
	})
}
