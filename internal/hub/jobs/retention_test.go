package jobs

import (
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// TestHistoryTTL: finished jobs and their devices.jobs rows disappear 30 days after they
// ended — periodically while running and at start — and unfinished jobs stay.
func TestHistoryTTL(t *testing.T) {
	old := retentionTick
	retentionTick = 10 * time.Millisecond
	t.Cleanup(func() { retentionTick = old })
	clk := &fakeClock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	tw := newMemTwins()
	tw.add("d1", nil, nil)
	tw.add("d2", nil, nil)
	db := openDB(t, "")
	m := newManager(t, db, tw, nil, Options{Now: clk.Now})

	if _, err := m.Create(twinJob("old", "*", map[string]any{"x": 1.0})); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "old", hubapi.JobStatusCompleted)
	clk.Advance(10 * 24 * time.Hour)
	if _, err := m.Create(twinJob("newer", "*", map[string]any{"x": 2.0})); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "newer", hubapi.JobStatusCompleted)
	future := clk.Now().Add(hubapi.MaxJobStartAhead) // the furthest a hub schedules; still unfinished below
	req := twinJob("waiting", "*", map[string]any{"x": 3.0})
	req.StartTime = &future
	if _, err := m.Create(req); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "waiting", hubapi.JobStatusScheduled)
	if n := len(rowsOf(m, "old")); n != 2 {
		t.Fatalf("old job has %d rows before expiry", n)
	}

	// 30 days after "old" ended (+1 s): it goes, "newer" (20 days old) stays.
	clk.Advance(20*24*time.Hour + time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// The job leaves memory first, then the store: wait for both.
		if _, err := m.Get("old"); huberr.Is(err, huberr.JobNotFound) && len(rowsOf(m, "old")) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("old job not purged")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(rowsOf(m, "old")); n != 0 {
		t.Fatalf("old job keeps %d device rows", n)
	}
	if _, err := m.Get("newer"); err != nil {
		t.Fatalf("newer job purged early: %v", err)
	}
	if len(m.List("", "")) != 2 {
		t.Fatalf("jobs left: %v", m.List("", ""))
	}

	// At start: a reopened manager purges what expired while the hub was down.
	m.Close()
	clk.Advance(15 * 24 * time.Hour)
	retentionTick = time.Hour // only the purge at New can act now
	m2 := newManager(t, db, tw, nil, Options{Now: clk.Now})
	if _, err := m2.Get("newer"); !huberr.Is(err, huberr.JobNotFound) {
		t.Fatalf("newer after restart: %v", err)
	}
	if n := len(rowsOf(m2, "newer")); n != 0 {
		t.Fatalf("newer keeps %d rows after restart", n)
	}
	if _, err := m2.Get("waiting"); err != nil {
		t.Fatalf("an unfinished job was purged: %v", err)
	}
}
