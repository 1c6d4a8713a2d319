package registry

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
)

// The store's twin records are binary: a restart of a million-device hub decodes a million of
// them, and encoding/json into maps costs tens of microseconds a twin where this codec costs
// one or two. A record starts with recordBinary; records written as JSON by earlier versions
// (they start with '{') are still read (twinState).
//
//	record  = 0x02 uvarint(etag) uvarint(tagsV) uvarint(desiredV) uvarint(reportedV)
//	          varint(desiredAt) varint(reportedAt) section(tags) section(desired) section(reported)
//	section = uvarint(n) n × member
//	member  = string(key) value varint(at) uvarint(ver)
//	value   = 's' string | 'n' float64 (8 bytes, little endian) | 't' | 'f'
//	        | 'o' section | 'a' string(JSON of the array)
//	string  = uvarint(len) bytes
const recordBinary = 0x02

var errCorrupt = errors.New("corrupt twin record")

func (tw *twin) appendBinary(b []byte) []byte {
	b = append(b, recordBinary)
	for _, n := range []int64{tw.etag, tw.tagsV, tw.desiredV, tw.reportedV} {
		b = binary.AppendUvarint(b, uint64(n))
	}
	b = binary.AppendVarint(b, tw.desiredAt)
	b = binary.AppendVarint(b, tw.reportedAt)
	for _, ms := range [][]member{tw.tags, tw.desired, tw.reported} {
		b = appendSection(b, ms)
	}
	return b
}

func appendSection(b []byte, ms []member) []byte {
	b = binary.AppendUvarint(b, uint64(len(ms)))
	for i := range ms {
		mb := &ms[i]
		b = appendBytes(b, mb.key)
		switch v := mb.val.(type) {
		case string:
			b = appendBytes(append(b, 's'), v)
		case float64:
			b = binary.LittleEndian.AppendUint64(append(b, 'n'), math.Float64bits(v))
		case bool:
			if v {
				b = append(b, 't')
			} else {
				b = append(b, 'f')
			}
		case *object:
			b = appendSection(append(b, 'o'), v.ms)
		default: // an array, in the JSON data model
			j, err := json.Marshal(v)
			if err != nil {
				j = []byte("null")
			}
			b = appendBytes(append(b, 'a'), string(j))
		}
		b = binary.AppendVarint(b, mb.at)
		b = binary.AppendUvarint(b, uint64(mb.ver))
	}
	return b
}

func appendBytes(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// decoder reads binary records, interning what it reads. Each loading goroutine has its own.
type decoder struct {
	b   []byte
	err error
	*interner
}

func newDecoder() *decoder { return &decoder{interner: newInterner()} }

// interner shares keys and short values (boxed once, as the twin's members hold them) across
// twins, so that a fleet of a million devices holds one "building" key and one "43" value
// instead of a million each. Members are immutable, so sharing is safe. Not for concurrent use.
type interner struct {
	strs    map[string]any
	keys    map[string]string
	numbers map[float64]any
}

func newInterner() *interner {
	return &interner{strs: map[string]any{}, keys: map[string]string{}, numbers: map[float64]any{}}
}

// internLimit bounds the intern tables: values beyond it (ids, free text) are not shared.
const internLimit = 1 << 16

// Interned strings are at most this long: longer ones are rarely repeated.
const internMaxLen = 32

// internKey returns the shared copy of a key, read from a record or given by a seed.
func internKey[T ~string | ~[]byte](in *interner, b T) string {
	if k, ok := in.keys[string(b)]; ok {
		return k
	}
	k := string(b)
	if len(in.keys) < internLimit {
		in.keys[k] = k
	}
	return k
}

// internString returns the shared boxed copy of a short string value.
func internString[T ~string | ~[]byte](in *interner, b T) any {
	if v, ok := in.strs[string(b)]; ok {
		return v
	}
	var v any = string(b)
	if len(b) <= internMaxLen && len(in.strs) < internLimit {
		in.strs[string(b)] = v
	}
	return v
}

func (in *interner) number(f float64) any {
	if v, ok := in.numbers[f]; ok {
		return v
	}
	var v any = f
	if len(in.numbers) < internLimit {
		in.numbers[f] = v
	}
	return v
}

// value interns a scalar of the JSON data model (other values are returned as they are).
func (in *interner) value(v any) any {
	switch x := v.(type) {
	case string:
		if len(x) <= internMaxLen {
			return internString(in, x)
		}
	case float64:
		return in.number(x)
	case bool:
		if x {
			return boxedTrue
		}
		return boxedFalse
	}
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	s := d.b[:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) number() any {
	if len(d.b) < 8 {
		d.fail()
		return 0.0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return d.interner.number(f)
}

// boxed true and false: bool values need no allocation of their own.
var boxedTrue, boxedFalse any = true, false

func (d *decoder) section(depth int) []member {
	n := d.uvarint()
	if n > uint64(len(d.b)) || depth > 64 { // every member takes at least one byte
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	ms := make([]member, n)
	for i := range ms {
		ms[i].key = internKey(d.interner, d.bytes())
		if len(d.b) == 0 {
			d.fail()
			return nil
		}
		tag := d.b[0]
		d.b = d.b[1:]
		switch tag {
		case 's':
			ms[i].val = internString(d.interner, d.bytes())
		case 'n':
			ms[i].val = d.number()
		case 't':
			ms[i].val = boxedTrue
		case 'f':
			ms[i].val = boxedFalse
		case 'o':
			ms[i].val = &object{ms: d.section(depth + 1)}
		case 'a':
			var arr []any
			if err := json.Unmarshal(d.bytes(), &arr); err != nil {
				d.fail()
				return nil
			}
			ms[i].val = arr
		default:
			d.fail()
			return nil
		}
		ms[i].at = d.varint()
		ms[i].ver = int64(d.uvarint())
	}
	return ms
}

// twin decodes a binary record (b[0] == recordBinary).
func (d *decoder) twin(b []byte) (twin, error) {
	d.b, d.err = b[1:], nil
	var tw twin
	tw.etag, tw.tagsV, tw.desiredV, tw.reportedV = int64(d.uvarint()), int64(d.uvarint()), int64(d.uvarint()), int64(d.uvarint())
	tw.desiredAt, tw.reportedAt = d.varint(), d.varint()
	tw.tags, tw.desired, tw.reported = d.section(0), d.section(0), d.section(0)
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return tw, d.err
}

// decodeTwin reads a stored twin record in either form.
func decodeTwin(b []byte, d *decoder, times timeCache) (twin, error) {
	if len(b) > 0 && b[0] == recordBinary {
		return d.twin(b)
	}
	var rec twinState
	if err := json.Unmarshal(b, &rec); err != nil {
		return twin{}, err
	}
	return twinOf(&rec, times), nil
}

// A volatile record (bucket "volatile") is flag(connected) varint(connectionStateUpdatedTime)
// varint(lastActivityTime), times in Unix nanoseconds (0 = never).
func appendVolatile(b []byte, connected bool, connAt, activeAt int64) []byte {
	flag := byte(0)
	if connected {
		flag = 1
	}
	return binary.AppendVarint(binary.AppendVarint(append(b, flag), connAt), activeAt)
}

func decodeVolatile(b []byte) (connected bool, connAt, activeAt int64, ok bool) {
	if len(b) < 3 || b[0] > 1 {
		return false, 0, 0, false
	}
	connAt, n := binary.Varint(b[1:])
	if n <= 0 {
		return false, 0, 0, false
	}
	activeAt, m := binary.Varint(b[1+n:])
	return b[0] == 1, connAt, activeAt, m > 0 && 1+n+m == len(b)
}

// Device records are binary too (JSON ones, from earlier versions, are still read):
//
//	device = 0x02 string(deviceId) string(generationId) string(etag) uvarint(etagN)
//	         string(status) flag [string(statusReason)] string(statusUpdatedTime)
//	         string(connectionState) string(connectionStateUpdatedTime) string(lastActivityTime)
//	         uvarint(cloudToDeviceMessageCount) string(primaryKey) string(secondaryKey)
//	         string(authenticationType) flag(iotEdge)
func appendDeviceRecord(b []byte, d Device, etagN int64) []byte {
	b = append(b, recordBinary)
	b = appendBytes(appendBytes(appendBytes(b, d.DeviceID), d.GenerationID), d.ETag)
	b = binary.AppendUvarint(b, uint64(etagN))
	b = appendBytes(b, d.Status)
	if d.StatusReason != nil {
		b = appendBytes(append(b, 1), *d.StatusReason)
	} else {
		b = append(b, 0)
	}
	b = appendBytes(b, d.StatusUpdatedTime)
	b = appendBytes(appendBytes(appendBytes(b, d.ConnectionState), d.ConnectionStateUpdatedTime), d.LastActivityTime)
	b = binary.AppendUvarint(b, uint64(d.CloudToDeviceMessageCount))
	sk := d.Authentication.SymmetricKey
	b = appendBytes(appendBytes(appendBytes(b, sk.PrimaryKey), sk.SecondaryKey), d.Authentication.Type)
	if d.Capabilities.IotEdge {
		return append(b, 1)
	}
	return append(b, 0)
}

func (d *decoder) text() string {
	b := d.bytes()
	if v, ok := d.strs[string(b)]; ok {
		if s, isStr := v.(string); isStr {
			return s
		}
	}
	return string(b)
}

func (d *decoder) flag() bool {
	if len(d.b) == 0 {
		d.fail()
		return false
	}
	f := d.b[0]
	d.b = d.b[1:]
	return f == 1
}

// device decodes a binary device record (b[0] == recordBinary).
func (d *decoder) device(b []byte) (deviceRecord, error) {
	d.b, d.err = b[1:], nil
	var rec deviceRecord
	dev := &rec.Device
	dev.DeviceID, dev.GenerationID, dev.ETag = string(d.bytes()), string(d.bytes()), string(d.bytes())
	rec.ETagN = int64(d.uvarint())
	dev.Status = d.text()
	if d.flag() {
		reason := string(d.bytes())
		dev.StatusReason = &reason
	}
	dev.StatusUpdatedTime = d.text()
	dev.ConnectionState, dev.ConnectionStateUpdatedTime, dev.LastActivityTime = d.text(), string(d.bytes()), string(d.bytes())
	dev.CloudToDeviceMessageCount = int(d.uvarint())
	dev.Authentication.SymmetricKey.PrimaryKey = string(d.bytes())
	dev.Authentication.SymmetricKey.SecondaryKey = string(d.bytes())
	dev.Authentication.Type = d.text()
	dev.Capabilities.IotEdge = d.flag()
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return rec, d.err
}

// decodeDevice reads a stored device record in either form.
func decodeDevice(b []byte, d *decoder) (deviceRecord, error) {
	if len(b) > 0 && b[0] == recordBinary {
		return d.device(b)
	}
	var rec deviceRecord
	err := json.Unmarshal(b, &rec)
	return rec, err
}
