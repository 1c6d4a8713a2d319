package registry

import (
	"path/filepath"
	"testing"

	"github.com/iotplan/iotplan/internal/query"
)

// BenchmarkQueryOverTwins runs, over 100,000 compact twins, the two kinds of condition plans
// and rollouts send: one on a tag and one on deviceId (a rollout's wave bound), and reports
// the cost per twin.
func BenchmarkQueryOverTwins(b *testing.B) {
	r, _ := benchRegistry(b, filepath.Join(b.TempDir(), "hub.db"))
	const n = 100_000
	seedDoors(b, r, n)
	for _, text := range []string{
		"SELECT COUNT() AS n FROM devices WHERE tags.building = '41'",
		"SELECT COUNT() AS n FROM devices WHERE deviceId < 'door-0050000'",
		"SELECT COUNT() AS n FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
	} {
		q, err := query.Parse(text)
		if err != nil {
			b.Fatal(err)
		}
		p, err := query.Compile(q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(text[len("SELECT COUNT() AS n FROM devices WHERE "):], func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := p.Run(r.ForEachTwin); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/twin")
		})
	}
}
