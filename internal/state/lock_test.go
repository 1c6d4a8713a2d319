package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// Two clients (two connections, as two processes would have) race for the lock, round after
// round: exactly one wins each round, and the loser is told who won.
func TestLockRaceHasOneWinner(t *testing.T) {
	h, c1 := startHub(t)
	c2 := hubtest.Client(t, h)
	ctx := context.Background()
	stores := []*Store{openStore(t, c1, DefaultName), openStore(t, c2, DefaultName)}
	for round := range 25 {
		var wg sync.WaitGroup
		locks := make([]*Lock, 2)
		errs := make([]error, 2)
		for i, s := range stores {
			wg.Add(1)
			go func() {
				defer wg.Done()
				locks[i], errs[i] = s.Lock(ctx, LockRequest{Operation: fmt.Sprintf("racer %d", i)}, 0)
			}()
		}
		wg.Wait()
		var won []*Lock
		for i := range 2 {
			var le *LockedError
			switch {
			case errs[i] == nil:
				won = append(won, locks[i])
			case errors.As(errs[i], &le) && errors.Is(errs[i], ErrLocked):
			default:
				t.Fatalf("round %d: racer %d: %v", round, i, errs[i])
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d racers hold the lock, want exactly 1", round, len(won))
		}
		for i := range 2 {
			var le *LockedError
			if errors.As(errs[i], &le) && le.Holder != won[0].Info() {
				t.Errorf("round %d: the loser was told the holder is %+v, not %+v", round, le.Holder, won[0].Info())
			}
		}
		if err := won[0].Unlock(ctx); err != nil {
			t.Fatalf("round %d: unlock: %v", round, err)
		}
	}
}

// Writers that each lock, read, append one resource, write and unlock, concurrently: no update
// is lost and the serial counts every write.
func TestLockedReadModifyWriteLosesNothing(t *testing.T) {
	h, c1 := startHub(t)
	ctx := context.Background()
	const writers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		s := openStore(t, hubtest.Client(t, h), DefaultName)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				errs <- appendOne(ctx, s, fmt.Sprintf("twin.w%d_%d", w, i))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := openStore(t, c1, DefaultName).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Resources) != writers*each || st.Serial != writers*each {
		t.Errorf("after %d locked writes: %d resources, serial %d", writers*each, len(st.Resources), st.Serial)
	}
}

func appendOne(ctx context.Context, s *Store, addr string) error {
	l, err := s.Lock(ctx, LockRequest{Operation: "append"}, time.Minute)
	if err != nil {
		return err
	}
	st, err := s.Read(ctx)
	if err != nil {
		return err
	}
	st.Resources = append(st.Resources, Resource{Addr: addr, Kind: "twin", Target: "*"})
	if _, err := l.Write(ctx, st); err != nil {
		return err
	}
	return l.Unlock(ctx)
}

func TestLockedErrorNamesTheHolder(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	s := openStore(t, c, DefaultName)
	l, err := s.Lock(ctx, LockRequest{Operation: "apply", Version: "1.2.3", Info: "ci run 42"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if i := l.Info(); i.ID == "" || i.PID != os.Getpid() || i.Host != host || i.Version != "1.2.3" || i.Info != "ci run 42" || i.Created.IsZero() {
		t.Errorf("lock info = %+v", i)
	}
	_, err = openStore(t, c, DefaultName).Lock(ctx, LockRequest{Operation: "destroy"}, 0)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Holder != l.Info() {
		t.Fatalf("second Lock = %v, want a LockedError with the holder %+v", err, l.Info())
	}
	t.Logf("message: %v", err)
}

func TestLockTimeoutWaitsForUnlock(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	s := openStore(t, c, DefaultName)
	held := lock(t, s, "apply")

	start := time.Now()
	if _, err := s.Lock(ctx, LockRequest{Operation: "plan"}, 300*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock with a short timeout = %v, want ErrLocked", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Lock gave up after %v, before its 300ms timeout", d)
	}

	go func() {
		time.Sleep(400 * time.Millisecond)
		_ = held.Unlock(ctx)
	}()
	start = time.Now()
	l, err := s.Lock(ctx, LockRequest{Operation: "plan"}, 30*time.Second)
	if err != nil {
		t.Fatalf("Lock while waiting for an unlock: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 10*time.Second {
		t.Errorf("Lock waited %v", d)
	}
	_ = l.Unlock(ctx)

	// A cancelled context ends the wait.
	held = lock(t, s, "apply")
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(cctx, LockRequest{}, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lock with a cancelled context = %v", err)
	}
	_ = held.Unlock(ctx)
}

func TestForceUnlock(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	s := openStore(t, c, DefaultName)
	if err := s.ForceUnlock(ctx, "nope"); !errors.Is(err, ErrLockID) {
		t.Errorf("ForceUnlock of an unlocked state = %v, want ErrLockID", err)
	}
	l := lock(t, s, "apply")
	if _, err := l.Write(ctx, sampleState(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.ForceUnlock(ctx, "wrong-id"); !errors.Is(err, ErrLockID) {
		t.Errorf("ForceUnlock with a wrong id = %v, want ErrLockID", err)
	}
	if _, lk, _ := s.ReadWithLock(ctx); lk == nil || lk.ID != l.Info().ID {
		t.Fatalf("the lock after a refused force-unlock = %+v", lk)
	}
	if err := s.ForceUnlock(ctx, l.Info().ID); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write(ctx, sampleState(3)); !errors.Is(err, ErrLockLost) {
		t.Errorf("Write after force-unlock = %v, want ErrLockLost", err)
	}
	if err := l.Unlock(ctx); !errors.Is(err, ErrLockLost) {
		t.Errorf("Unlock after force-unlock = %v, want ErrLockLost", err)
	}
	// Someone else's lock since then: the old holder still cannot write.
	other := lock(t, openStore(t, c, DefaultName), "apply")
	if _, err := l.Write(ctx, sampleState(3)); !errors.Is(err, ErrLockLost) {
		t.Errorf("Write under another's lock = %v, want ErrLockLost", err)
	}
	if st, err := s.Read(ctx); err != nil || len(st.Resources) != 2 || st.Serial != 1 {
		t.Errorf("state after refused writes: %+v, %v", st, err)
	}
	_ = other.Unlock(ctx)
}

// setLock forges the lock of a state's header, as a process that was killed would leave it.
func setLock(t *testing.T, s *Store, li LockInfo) {
	t.Helper()
	var m map[string]any
	if err := remarshal(li, &m); err != nil {
		t.Fatal(err)
	}
	c := s.hub
	if _, err := c.UpdateTwin(context.Background(), s.device, hubapi.TwinPatch{Tags: map[string]any{MarkerTag: map[string]any{"lock": m}}}, "*"); err != nil {
		t.Fatal(err)
	}
}

func TestTakesOverTheLockOfADeadProcessOnThisHost(t *testing.T) {
	_, c := startHub(t)
	ctx := context.Background()
	// This host and which of its processes run, as the stores see them: the same on every
	// machine, whatever its name and its PIDs.
	const host, deadPID, livePID = "build-7", 4242, 4343
	onHost := func(host string) *Store {
		s := openStore(t, c, DefaultName)
		s.host = host
		s.alive = func(pid int) bool { return pid != deadPID }
		return s
	}
	s := onHost(host)
	l := lock(t, s, "apply") // makes the header
	if _, err := l.Write(ctx, sampleState(2)); err != nil {
		t.Fatal(err)
	}
	dead := LockInfo{ID: "killed", Operation: "apply", Who: "ci@" + host, Host: host, PID: deadPID, Created: time.Now().UTC().Truncate(time.Second)}
	setLock(t, s, dead)

	got, err := onHost(host).Lock(ctx, LockRequest{Operation: "apply"}, 0)
	if err != nil {
		t.Fatalf("Lock over a dead process's lock: %v", err)
	}
	if got.TookOverFrom == nil || *got.TookOverFrom != dead {
		t.Errorf("TookOverFrom = %+v, want %+v", got.TookOverFrom, dead)
	}
	if i := got.Info(); i.Host != host || i.PID != os.Getpid() {
		t.Errorf("the new lock = %+v, want one of pid %d on %s", i, os.Getpid(), host)
	}
	if _, err := l.Write(ctx, sampleState(1)); !errors.Is(err, ErrLockLost) {
		t.Errorf("the old lock still writes: %v", err)
	}
	if _, err := got.Write(ctx, sampleState(1)); err != nil {
		t.Errorf("the new holder cannot write: %v", err)
	}

	// Not taken over: a live process of this host, a process of another host, and a dead
	// process of hosts whose names do not single out a machine.
	for _, tc := range []struct {
		host string // the host of the store that asks for the lock
		li   LockInfo
	}{
		{host, LockInfo{ID: "alive", Host: host, PID: livePID, Operation: "apply"}},
		{host, LockInfo{ID: "elsewhere", Host: "other-" + host, PID: deadPID, Operation: "apply"}},
		{"localhost", LockInfo{ID: "localhost", Host: "localhost", PID: deadPID, Operation: "apply"}},
		{"", LockInfo{ID: "no-host", Host: "", PID: deadPID, Operation: "apply"}},
	} {
		setLock(t, s, tc.li)
		_, err := onHost(tc.host).Lock(ctx, LockRequest{Operation: "apply"}, 0)
		var le *LockedError
		if !errors.As(err, &le) || le.Holder.ID != tc.li.ID {
			t.Errorf("lock %s: Lock = %v, want LockedError", tc.li.ID, err)
		}
	}
}

func TestProcessAlive(t *testing.T) {
	if !ProcessAlive(os.Getpid()) {
		t.Error("this process is not alive")
	}
	// PID 1 always runs; unless the test runs as its owner, signalling it is refused (EPERM),
	// which is no sign of death.
	if !ProcessAlive(1) {
		t.Error("PID 1 is not alive")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if ProcessAlive(cmd.Process.Pid) {
		t.Errorf("PID %d, of a child that exited and was reaped, is alive", cmd.Process.Pid)
	}
}
