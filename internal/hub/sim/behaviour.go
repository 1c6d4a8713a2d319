package sim

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"sort"
	"time"
)

// Everything random about a simulated device is a hash of its id (and the method name and the
// call number), so the same fleet file gives the same offline devices, failing devices and
// latencies on every run and every machine.

func hash64(salt, id string, n uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(salt))
	h.Write([]byte{0})
	h.Write([]byte(id))
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	h.Write(b[:])
	// fnv's low bits mix poorly for similar inputs; finish with a splitmix64 round.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// pickFraction marks exactly round(fraction·len(ids)) devices, those whose hash under salt is
// smallest: the count is what the file says, the choice looks random and is reproducible.
// It returns nil when none is picked.
func pickFraction(ids []string, fraction float64, salt string) []bool {
	k := int(math.Round(fraction * float64(len(ids))))
	if k <= 0 {
		return nil
	}
	picked := make([]bool, len(ids))
	if k >= len(ids) {
		for i := range picked {
			picked[i] = true
		}
		return picked
	}
	order := make([]int32, len(ids))
	hs := make([]uint64, len(ids))
	for i, id := range ids {
		order[i] = int32(i)
		hs[i] = hash64(salt, id, 0)
	}
	sort.Slice(order, func(a, b int) bool { return hs[order[a]] < hs[order[b]] })
	for _, i := range order[:k] {
		picked[i] = true
	}
	return picked
}

// Latency is the delay before deviceID answers its call-th call (1-based) of m: uniform in
// [LatencyMin, LatencyMax], reproducible.
func (m *Method) Latency(deviceID string, call int64) time.Duration {
	return uniform(m.LatencyMin, m.LatencyMax, "latency/"+m.Name, deviceID, uint64(call))
}

// uniform is a reproducible duration in [lo, hi] for (salt, id, n).
func uniform(lo, hi time.Duration, salt, id string, n uint64) time.Duration {
	span := hi - lo
	if span <= 0 {
		return lo
	}
	return lo + time.Duration(hash64(salt, id, n)%uint64(span+1))
}

// OfflineDevices returns, for each device of g, whether it never connects (nil = all online).
func (g *Group) OfflineDevices() []bool {
	if g.Single {
		if g.Offline {
			return []bool{true}
		}
		return nil
	}
	return pickFraction(g.ids, g.OfflineFraction, "offline")
}

// FailingDevices returns, for each device of g, whether it always fails method m (nil = none).
func (g *Group) FailingDevices(m *Method) []bool {
	return pickFraction(g.ids, m.FailureFraction, "failure/"+m.Name)
}
