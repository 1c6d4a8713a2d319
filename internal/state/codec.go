package state

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// ChunkSize is the most characters one string value of the body holds: under the hub's 4 KB
// per value (hubapi.MaxTwinStringBytes), with room to spare.
const ChunkSize = 4000

// bodyEncoding names how the body's chunks encode the State's JSON.
const bodyEncoding = "gzip+base64"

// maxChunks bounds the chunk count a reader accepts: 32 KB of desired properties hold at most 9.
const maxChunks = hubapi.MaxPropertiesBytes/ChunkSize + 1

// maxJSON bounds the decompressed JSON a reader accepts, so that a forged body (a "zip bomb")
// cannot exhaust memory; 24 KB of gzip holding more than 64 MB of JSON is not iotplan's.
const maxJSON = 64 << 20

// header is tags.iotplanState. A twin cannot hold null (null in a patch deletes the key), so
// "lock": null is stored as no lock key. LockInfo's fields have no omitempty: a merge patch
// that replaces a lock overwrites every field of the previous one.
type header struct {
	Format  int       `json:"format"`
	Name    string    `json:"name"`
	Lineage string    `json:"lineage"`
	Serial  int64     `json:"serial"`
	Lock    *LockInfo `json:"lock,omitempty"`
}

// record is a state device's twin, decoded.
type record struct {
	exists bool    // the device exists
	etag   string  // the twin's etag, for If-Match
	hdr    *header // nil: no header yet (no device, or a device created but never written)
	state  *State  // the State the twin holds (the empty State when there is none)

	rawHeader    map[string]any // tags.iotplanState as read, to compute merge patches
	rawBody      map[string]any // properties.desired.iotplanState as read
	otherTags    int            // hubapi.TwinSize of the tags besides the header
	otherDesired int            // hubapi.TwinSize of the desired properties besides the body
}

// lock is the record's lock; nil when it has none (or no header).
func (r *record) lock() *LockInfo {
	if r.hdr == nil {
		return nil
	}
	return r.hdr.Lock
}

// emptyState is the State of a name that has never been written.
func emptyState(name string) *State {
	return &State{Format: Format, Name: name, Resources: []Resource{}}
}

// decodeTwin reads a state device's twin (as hubclient.GetTwin returns it). Every error wraps
// ErrForeign, ErrUnsupportedFormat or ErrCorrupt and names device.
func decodeTwin(device, name string, twin map[string]any) (*record, error) {
	rec := &record{exists: true, state: emptyState(name)}
	rec.etag, _ = twin["etag"].(string)
	tags, _ := twin["tags"].(map[string]any)
	props, _ := twin["properties"].(map[string]any)
	desired, _ := props["desired"].(map[string]any)
	desired = hubapi.TwinValues(desired)

	rawH, marked := tags[MarkerTag]
	if !marked {
		// A device iotplan created but never wrote (it stopped between the two calls) has an
		// empty twin; anything else was not made by iotplan.
		if len(tags) == 0 && len(desired) == 0 {
			return rec, nil
		}
		return nil, fmt.Errorf("%w: device %s has no %s tag, so it does not hold an iotplan state: it was made by someone else (rename or delete it, or use another state name)", ErrForeign, device, MarkerTag)
	}
	hdr, err := decodeHeader(device, name, rawH)
	if err != nil {
		return nil, err
	}
	rec.hdr, rec.rawHeader = hdr, rawH.(map[string]any)
	rec.otherTags = hubapi.TwinSize(tags) - len(MarkerTag) - hubapi.TwinSize(rawH)
	rec.state.Lineage, rec.state.Serial = hdr.Lineage, hdr.Serial

	rawB, hasBody := desired[MarkerTag]
	rec.otherDesired = hubapi.TwinSize(desired)
	if hasBody {
		rec.otherDesired -= len(MarkerTag) + hubapi.TwinSize(rawB)
	}
	if !hasBody {
		if hdr.Serial != 0 {
			return nil, fmt.Errorf("%w: device %s: the header is at serial %d but the body (properties.desired.%s) is missing", ErrCorrupt, device, hdr.Serial, MarkerTag)
		}
		return rec, nil
	}
	if rec.state, err = decodeBody(device, rawB, hdr); err != nil {
		return nil, err
	}
	rec.rawBody = rawB.(map[string]any)
	return rec, nil
}

// decodeHeader checks tags.iotplanState: format first (a newer one may change the rest), then
// that it is this state's.
func decodeHeader(device, name string, v any) (*header, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: device %s: tags.%s is not an object", ErrCorrupt, device, MarkerTag)
	}
	f, ok := m["format"].(float64)
	switch {
	case !ok || f != math.Trunc(f) || f < 1:
		return nil, fmt.Errorf("%w: device %s: tags.%s has no valid format", ErrCorrupt, device, MarkerTag)
	case f > Format:
		return nil, fmt.Errorf("%w: device %s holds a state of format %v, written by a newer iotplan; this one reads format %d: upgrade iotplan", ErrUnsupportedFormat, device, f, Format)
	}
	var h header
	if err := remarshal(m, &h); err != nil {
		return nil, fmt.Errorf("%w: device %s: tags.%s: %v", ErrCorrupt, device, MarkerTag, err)
	}
	if h.Name != name {
		return nil, fmt.Errorf("%w: device %s holds the state %q, not %q", ErrForeign, device, h.Name, name)
	}
	if h.Lineage == "" || h.Serial < 0 || (h.Lock != nil && h.Lock.ID == "") {
		return nil, fmt.Errorf("%w: device %s: tags.%s lacks a lineage, has a negative serial or a lock without an id", ErrCorrupt, device, MarkerTag)
	}
	return &h, nil
}

// decodeBody reads properties.desired.iotplanState and checks it against the header.
func decodeBody(device string, v any, hdr *header) (*State, error) {
	js, err := bodyJSON(v)
	if err != nil {
		return nil, fmt.Errorf("%w: device %s: properties.desired.%s: %v", ErrCorrupt, device, MarkerTag, err)
	}
	var st State
	if err := json.Unmarshal(js, &st); err != nil {
		return nil, fmt.Errorf("%w: device %s: the state's JSON: %v", ErrCorrupt, device, err)
	}
	if st.Format > Format {
		return nil, fmt.Errorf("%w: device %s holds a state body of format %d, written by a newer iotplan; this one reads format %d: upgrade iotplan", ErrUnsupportedFormat, device, st.Format, Format)
	}
	if st.Format != hdr.Format || st.Name != hdr.Name || st.Lineage != hdr.Lineage || st.Serial != hdr.Serial {
		return nil, fmt.Errorf("%w: device %s: the body (format %d, %q, lineage %q, serial %d) disagrees with the header (format %d, %q, lineage %q, serial %d)",
			ErrCorrupt, device, st.Format, st.Name, st.Lineage, st.Serial, hdr.Format, hdr.Name, hdr.Lineage, hdr.Serial)
	}
	if st.Resources == nil {
		st.Resources = []Resource{}
	}
	return &st, nil
}

// bodyJSON joins, decodes, decompresses and checks the body's chunks.
func bodyJSON(v any) ([]byte, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("not an object")
	}
	if enc, _ := m["enc"].(string); enc != bodyEncoding {
		return nil, fmt.Errorf("encoding %q, want %q", enc, bodyEncoding)
	}
	want, _ := m["sha256"].(string)
	n, ok := m["n"].(float64)
	if !ok || n != math.Trunc(n) || n < 1 || n > maxChunks {
		return nil, fmt.Errorf("no valid chunk count n")
	}
	var b64 bytes.Buffer
	for i := range int(n) {
		p, ok := m["p"+strconv.Itoa(i)].(string)
		if !ok {
			return nil, fmt.Errorf("chunk p%d is missing", i)
		}
		b64.WriteString(p)
	}
	zipped, err := base64.StdEncoding.DecodeString(b64.String())
	if err != nil {
		return nil, fmt.Errorf("base64: %v", err)
	}
	js, err := gunzip(zipped)
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(js); hex.EncodeToString(sum[:]) != want {
		return nil, fmt.Errorf("SHA-256 mismatch: the body is not what was written")
	}
	return js, nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gzip: %v", err)
	}
	js, err := io.ReadAll(io.LimitReader(zr, maxJSON+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %v", err)
	}
	if len(js) > maxJSON {
		return nil, fmt.Errorf("gzip: more than %d bytes of JSON", maxJSON)
	}
	return js, nil
}

// encodeBody is the body of st and st's JSON.
func encodeBody(st *State) (map[string]any, []byte, error) {
	js, err := json.Marshal(st)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the state: %w", err)
	}
	var zipped bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zipped, gzip.BestCompression) // the level is valid
	if _, err := zw.Write(js); err != nil {
		return nil, nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, nil, err
	}
	b64 := base64.StdEncoding.EncodeToString(zipped.Bytes())
	sum := sha256.Sum256(js)
	body := map[string]any{"enc": bodyEncoding, "sha256": hex.EncodeToString(sum[:])}
	n := 0
	for ; n*ChunkSize < len(b64); n++ {
		body["p"+strconv.Itoa(n)] = b64[n*ChunkSize : min((n+1)*ChunkSize, len(b64))]
	}
	body["n"] = float64(n)
	return body, js, nil
}

// remarshal converts a JSON document (map) into a typed value, or a typed value into a map.
func remarshal(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

// mergePatch is the JSON merge patch (RFC 7386) that turns old into new: keys of old that new
// lacks become nil (the hub deletes them), changed values are replaced, objects are patched
// key by key. Equal documents give an empty patch.
func mergePatch(old, new map[string]any) map[string]any {
	p := map[string]any{}
	for k := range old {
		if _, ok := new[k]; !ok {
			p[k] = nil
		}
	}
	for k, nv := range new {
		ov, had := old[k]
		om, oldObj := ov.(map[string]any)
		nm, newObj := nv.(map[string]any)
		switch {
		case had && oldObj && newObj:
			if sub := mergePatch(om, nm); len(sub) > 0 {
				p[k] = sub
			}
		case !had || !jsonEqual(ov, nv):
			p[k] = nv
		}
	}
	return p
}

func jsonEqual(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
