package query

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The 1,000,000-twin fleet is built only when a benchmark asks for it.
const benchFleetSize = 1_000_000

var (
	benchFleetOnce sync.Once
	benchFleet     []map[string]any
)

// fleetOfTwins builds twins shaped like JSON-decoded hub twins (float64
// numbers, nested maps, system properties) with varied values.
func fleetOfTwins(n int) []map[string]any {
	buildings := make([]string, 50)
	for i := range buildings {
		buildings[i] = fmt.Sprint(i + 20)
	}
	rings := []string{"canary", "early", "broad", "late"}
	fws := []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0"}
	states := []string{"Connected", "Disconnected"}
	fleet := make([]map[string]any, n)
	for i := range fleet {
		status := "enabled"
		if i%10 == 9 {
			status = "disabled"
		}
		b := buildings[(i/7)%len(buildings)]
		floor := float64(i % 10)
		fleet[i] = map[string]any{
			"deviceId":                  fmt.Sprintf("door-%07d", i),
			"etag":                      "AAAAAAAAAAE=",
			"deviceEtag":                "NzQxMTYyNTA3",
			"status":                    status,
			"statusUpdateTime":          "0001-01-01T00:00:00Z",
			"connectionState":           states[i%2],
			"lastActivityTime":          "2026-01-01T00:00:00Z",
			"cloudToDeviceMessageCount": 0.0,
			"authenticationType":        "sas",
			"version":                   float64(i%7 + 1),
			"tags": map[string]any{
				"building": b,
				"floor":    floor,
				"ring":     rings[i%len(rings)],
			},
			"properties": map[string]any{
				"desired": map[string]any{
					"building": b, "floor": floor, "$version": 3.0,
				},
				"reported": map[string]any{
					"building": b, "floor": floor, "fw": fws[i%len(fws)],
					"temp": 18.0 + float64(i%15), "$version": 5.0,
				},
			},
		}
	}
	return fleet
}

func getBenchFleet(b *testing.B) []map[string]any {
	b.Helper()
	benchFleetOnce.Do(func() { benchFleet = fleetOfTwins(benchFleetSize) })
	return benchFleet
}

// perTwin runs pass (one pass over the whole fleet) b.N times and reports
// ns/twin and allocs/twin.
func perTwin(b *testing.B, fleet []map[string]any, pass func()) {
	b.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		pass()
	}
	elapsed := time.Since(start)
	b.StopTimer()
	runtime.ReadMemStats(&after)
	twins := float64(b.N) * float64(len(fleet))
	b.ReportMetric(float64(elapsed.Nanoseconds())/twins, "ns/twin")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/twins, "allocs/twin")
}

// typicalQuery is a 200-character statement of the kind iotplan sends.
const typicalQuery = "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60 AND deviceId IN ['door-01', 'door-02'] AND NOT IS_DEFINED(tags.retired)"

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(typicalQuery)))
	for i := 0; i < b.N; i++ {
		if _, err := Parse(typicalQuery); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFormat(b *testing.B) {
	q, err := Parse(typicalQuery)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = q.String()
	}
}

// matchCond: the first terms are usually true, so all three are evaluated
// for most twins (the costly order).
const matchCond = "status = 'enabled' AND properties.reported.floor >= 3 AND tags.building = '43'"

func BenchmarkMatch3Terms(b *testing.B) {
	fleet := getBenchFleet(b)
	e, err := ParseCondition(matchCond)
	if err != nil {
		b.Fatal(err)
	}
	c, err := CompileCondition(e)
	if err != nil {
		b.Fatal(err)
	}
	matched := 0
	perTwin(b, fleet, func() {
		matched = 0
		for _, d := range fleet {
			if c.Match(d) {
				matched++
			}
		}
	})
	if matched == 0 || matched == len(fleet) {
		b.Fatalf("condition matched %d of %d twins: benchmark fleet is wrong", matched, len(fleet))
	}
}

// BenchmarkMatch3TermsAllTrue: all three terms hold for most twins, so no
// term can be skipped: six map lookups per twin.
func BenchmarkMatch3TermsAllTrue(b *testing.B) {
	fleet := getBenchFleet(b)
	c, err := CompileCondition(mustCond("status = 'enabled' AND properties.reported.floor >= 1 AND tags.ring != 'late'"))
	if err != nil {
		b.Fatal(err)
	}
	matched := 0
	perTwin(b, fleet, func() {
		matched = 0
		for _, d := range fleet {
			if c.Match(d) {
				matched++
			}
		}
	})
	if matched < len(fleet)/2 {
		b.Fatalf("condition matched only %d of %d twins", matched, len(fleet))
	}
}

func BenchmarkGroupBy(b *testing.B) {
	fleet := getBenchFleet(b)
	p := MustCompile("SELECT properties.reported.fw AS fw, COUNT() AS n, AVG(properties.reported.temp) AS avgTemp, MAX(tags.floor) AS maxFloor FROM devices WHERE status = 'enabled' GROUP BY properties.reported.fw")
	var rows []any
	perTwin(b, fleet, func() {
		var err error
		rows, err = p.Run(source(fleet))
		if err != nil {
			b.Fatal(err)
		}
	})
	if len(rows) != 5 {
		b.Fatalf("got %d groups, want 5", len(rows))
	}
}

// BenchmarkMatchHot is BenchmarkMatch3Terms over 1,000 twins that stay in
// the CPU caches: the evaluator's own cost without memory stalls.
func BenchmarkMatchHot(b *testing.B) {
	fleet := fleetOfTwins(1000)
	c, _ := CompileCondition(mustCond(matchCond))
	perTwin(b, fleet, func() {
		for _, d := range fleet {
			c.Match(d)
		}
	})
}

// BenchmarkMapOnly is the same condition hand-written as Go map lookups: the
// floor any evaluator over map[string]any twins can reach on this fleet.
func BenchmarkMapOnly(b *testing.B) {
	fleet := getBenchFleet(b)
	n := 0
	perTwin(b, fleet, func() {
		for _, d := range fleet {
			if s, _ := d["status"].(string); s == "enabled" {
				if p, ok := d["properties"].(map[string]any); ok {
					if r, ok := p["reported"].(map[string]any); ok {
						if f, _ := r["floor"].(float64); f >= 3 {
							if t, ok := d["tags"].(map[string]any); ok {
								if s, _ := t["building"].(string); s == "43" {
									n++
								}
							}
						}
					}
				}
			}
		}
	})
}

func mustCond(s string) Expr {
	e, err := ParseCondition(s)
	if err != nil {
		panic(err)
	}
	return e
}
