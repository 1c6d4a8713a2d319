package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hubclient"
)

// seedFleetSize is the in-process fleet TestHubKilledDuringSeeding seeds: large enough that
// seeding takes a good part of the hub's start, so that random kills land inside it.
const seedFleetSize = 30000

// bigFleet: n in-process devices tagged fleet = "big", all online.
func bigFleet(n int) string {
	return fmt.Sprintf(`
group "big" {
  count               = %d
  id                  = "big-%%05d"
  tags                = { fleet = "big" }
  reported_echo_delay = "off"
}
`, n)
}

// otherFleet: another fleet file, 50 devices tagged fleet = "other".
const otherFleet = `
group "other" {
  count               = 50
  id                  = "other-%02d"
  tags                = { fleet = "other" }
  reported_echo_delay = "off"
}
`

// seedPhase reads, from a dead hub's store, how far seeding of its fleet got: "none" (no fleet
// remembered: the kill came before seeding began), "seeding" (remembered as being seeded) or
// "seeded". It only classifies the kills for the log and the kill-time search: the checks
// are made on what the restarted hub answers.
func seedPhase(t *testing.T, data string) string {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(data, "hub.db"), 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if errors.Is(err, os.ErrNotExist) {
		return "none"
	}
	if err != nil {
		t.Fatalf("opening the killed hub's store: %v", err)
	}
	defer db.Close()
	phase := "none"
	err = db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("fleet"))
		if b == nil {
			return nil
		}
		v := b.Get([]byte("current"))
		if v == nil {
			return nil
		}
		var rf struct {
			Seeding bool `json:"seeding"`
		}
		if err := json.Unmarshal(v, &rf); err != nil {
			return err
		}
		phase = "seeded"
		if rf.Seeding {
			phase = "seeding"
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return phase
}

// fleetCounts: how many devices of tag fleet = name the hub has, and how many of them are
// connected (simulated devices are connected sessions, docs/hub-api.md §10).
func fleetCounts(t *testing.T, c *hubclient.Client, name string) (devices, connected int) {
	t.Helper()
	count := func(where string) int {
		rows, err := c.Query(context.Background(), "SELECT COUNT() AS n FROM devices WHERE "+where)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Fatalf("COUNT() answered %v", rows)
		}
		n, _ := rows[0]["n"].(float64)
		return int(n)
	}
	return count("tags.fleet = '" + name + "'"), count("tags.fleet = '" + name + "' AND connectionState = 'Connected'")
}

// TestHubKilledDuringSeeding starts 'iotplan dev' on a new data directory with a fleet of
// seedFleetSize in-process devices, kills it with SIGKILL at a random moment of its start
// (IOTPLAN_CRASH_KILLS times, default 6, each on a new data directory), and restarts it on
// the same data, in turn with another fleet file, the same one and none. Seeding is all or
// nothing (docs/hub-api.md, "Durability"): a restarted hub holds the whole fleet, every
// device simulated and connected, or none of it — never part of it; with another fleet file
// it refuses to start, saying the seed was interrupted, while the seed is unfinished, and
// the next start without a fleet finishes it.
func TestHubKilledDuringSeeding(t *testing.T) {
	kills := crashKills(t, 6)
	dir := t.TempDir()
	big := filepath.Join(dir, "big.hcl")
	other := filepath.Join(dir, "other.hcl")
	if err := os.WriteFile(big, []byte(bigFleet(seedFleetSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte(otherFleet), 0o644); err != nil {
		t.Fatal(err)
	}

	// How long a whole start takes on this machine, seeding included: the kills are spread
	// over it, then narrowed to where the store says seeding was under way.
	began := time.Now()
	p := startDev(t, filepath.Join(dir, "calibrate"), big)
	full := time.Since(began)
	if n, on := fleetCounts(t, p.c, "big"); n != seedFleetSize || on != seedFleetSize {
		t.Fatalf("a clean start holds %d devices, %d connected; want %d", n, on, seedFleetSize)
	}
	p.kill(t)
	lo, hi := full/20, full
	phases, refused := map[string]int{}, 0
	for k := 0; k < kills; k++ {
		data := filepath.Join(dir, fmt.Sprintf("kill-%d", k))
		p := launchDev(t, data, big)
		after := lo + time.Duration(rand.Int64N(int64(hi-lo)+1))
		time.Sleep(after)
		p.kill(t)
		phase := seedPhase(t, data)
		// Each phase's kills take the three restarts in turn, so that the kills that land
		// during seeding (the point of the test) try all three, another fleet first.
		restart := []string{"other", "same", "none"}[phases[phase]%3]
		phases[phase]++
		// Narrow the window to the seeding: a kill before it raises the lower bound, one
		// after it lowers the upper one.
		switch phase {
		case "none":
			lo = min(max(lo, after), hi)
		case "seeded":
			hi = max(min(hi, after), lo)
		}

		fleet := map[string]string{"same": big, "none": "", "other": other}[restart]
		p = launchDev(t, data, fleet)
		err := p.waitReady(2 * time.Minute)
		what := fmt.Sprintf("kill %d after %v (%s), restarted with fleet %s", k+1, after.Round(time.Millisecond), phase, restart)
		switch {
		case restart == "other" && phase == "seeding":
			// Another fleet must not be mixed with the half-seeded one: refused, clearly.
			out := p.out.String()
			if !errors.Is(err, errDevExited) || !strings.Contains(out, "seeding of the simulated fleet was interrupted") || !strings.Contains(out, "big.hcl") {
				t.Fatalf("%s: want the start refused, naming the interrupted seed of big.hcl; got %v\n%s", what, err, out)
			}
			// The next start without a fleet finishes the remembered one.
			p = launchDev(t, data, "")
			if err := p.waitReady(2 * time.Minute); err != nil {
				t.Fatalf("%s, then none: %v\n%s", what, err, p.out)
			}
			what += ", refused, then restarted with none"
			refused++
		case err != nil:
			t.Fatalf("%s: %v\n%s", what, err, p.out)
		}
		n, on := fleetCounts(t, p.c, "big")
		wantBig, wantOn := seedFleetSize, seedFleetSize
		switch {
		case phase == "none" && restart != "same":
			// Nothing of big.hcl was stored: the hub seeds what it is given (or the default fleet).
			wantBig, wantOn = 0, 0
		case phase == "seeded" && restart == "other":
			// As after a clean stop: big.hcl was seeded whole, and the hub now simulates the
			// fleet it is given; big.hcl's devices stay registered, not simulated.
			wantOn = 0
		}
		if n != wantBig || on != wantOn {
			t.Errorf("%s: %d devices of big.hcl, %d of them connected; want %d, %d connected", what, n, on, wantBig, wantOn)
		}
		if restart == "other" && phase != "seeding" {
			if n, on := fleetCounts(t, p.c, "other"); n != 50 || on != 50 {
				t.Errorf("%s: %d devices of other.hcl, %d connected; want 50", what, n, on)
			}
		}
		t.Log(what + ": ok")
		p.kill(t)
	}
	if phases["seeding"] == 0 {
		t.Errorf("no kill landed during seeding (%v; a whole start takes %v): the test proved nothing", phases, full)
	}
	t.Logf("%d kills (a whole start takes %v): %d before seeding began, %d during seeding (%d restarts with another fleet refused), %d after it",
		kills, full.Round(time.Millisecond), phases["none"], phases["seeding"], refused, phases["seeded"])
}
