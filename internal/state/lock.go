package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/iotplan/iotplan/internal/clock"
)

// LockInfo describes who holds a state's lock, as stored in the header.
type LockInfo struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"` // "apply", "state rm", …
	Who       string    `json:"who"`       // user@host
	Host      string    `json:"host"`      // os.Hostname of the holder
	PID       int       `json:"pid"`
	Created   time.Time `json:"created"`
	Version   string    `json:"version"` // the holder's iotplan version
	Info      string    `json:"info"`
}

// String describes the holder for messages: who, where, since when, doing what, which id.
func (i LockInfo) String() string {
	op := i.Operation
	if op == "" {
		op = "an unnamed operation"
	}
	return fmt.Sprintf("%s (pid %d on %s, iotplan %s) since %s for %s, lock id %s",
		i.Who, i.PID, i.Host, i.Version, i.Created.UTC().Format(time.RFC3339), op, i.ID)
}

// LockRequest is what a caller says about the lock it asks for.
type LockRequest struct {
	Operation string // what it is for: "apply", "destroy", "state rm"
	Version   string // the caller's iotplan version
	Info      string // anything else worth showing to whoever finds the state locked
}

// LockedError is Lock's error when someone else holds the lock; errors.Is(err, ErrLocked).
type LockedError struct {
	State  string
	Holder LockInfo
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("the state %q is locked by %s", e.State, e.Holder)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock is a held lock on a state: only its holder writes the state.
type Lock struct {
	s    *Store
	info LockInfo
	// TookOverFrom is the lock this one replaced, when Lock took over a lock left by a process
	// of this host that no longer runs; nil otherwise.
	TookOverFrom *LockInfo
}

// Info describes this lock as the header stores it.
func (l *Lock) Info() LockInfo { return l.info }

// Limits on the strings of a lock, so that a header stays far below the 8 KB of tags.
const (
	maxLockField = 200
	maxLockInfo  = 1000
)

// Lock takes the state's lock: a compare-and-swap of the header, so that of two processes
// racing for it exactly one gets it. When another process holds it, Lock retries about
// every second until timeout has passed (at once when timeout <= 0), then returns a
// *LockedError. A lock held by a process of this host that no longer runs is taken over
// (see Lock.TookOverFrom); a lock of another host is only removed by ForceUnlock.
func (s *Store) Lock(ctx context.Context, req LockRequest, timeout time.Duration) (*Lock, error) {
	info := newLockInfo(req, s.host)
	deadline := time.Now().Add(timeout)
	for {
		l, err := s.tryLock(ctx, info)
		var le *LockedError
		if !errors.As(err, &le) {
			return l, err
		}
		wait := min(s.poll, time.Until(deadline))
		if wait <= 0 {
			return nil, err
		}
		if err := clock.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("waiting for the lock of the state %q, held by %s: %w", s.name, le.Holder, err)
		}
	}
}

// tryLock makes one attempt at the lock, re-reading after each lost compare-and-swap.
func (s *Store) tryLock(ctx context.Context, info LockInfo) (*Lock, error) {
	var prev *LockInfo
	err := s.cas(ctx, s.ensure, func(rec *record) error {
		if prev = rec.lock(); prev != nil && !s.abandoned(*prev) {
			return &LockedError{State: s.name, Holder: *prev}
		}
		info.Created = time.Now().UTC() // when it was taken, not when Lock began waiting
		return s.writeLock(ctx, rec, &info)
	})
	if err != nil {
		return nil, err
	}
	return &Lock{s: s, info: info, TookOverFrom: prev}, nil
}

// writeLock writes rec's header with lock li (nil: none).
func (s *Store) writeLock(ctx context.Context, rec *record, li *LockInfo) error {
	hdr := *rec.hdr
	hdr.Lock = li
	return s.patch(ctx, rec, &hdr, nil)
}

// abandoned reports a lock left by a process of this host that no longer runs (killed, or
// crashed): its PID is gone. Locks of other hosts cannot be checked from here. A host name
// that does not single out a machine ("localhost") is never trusted.
func (s *Store) abandoned(l LockInfo) bool {
	if s.host == "" || s.host == "localhost" || l.Host != s.host || l.PID <= 0 {
		return false
	}
	return !s.alive(l.PID)
}

// ProcessAlive reports whether a process with this PID runs on this machine: signal 0 checks
// without touching it. Any answer but "no such process" counts as alive, in particular EPERM
// (the process exists but belongs to another user), so that a doubt never declares a process
// dead.
func ProcessAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	defer p.Release() // FindProcess may hold a handle (a pidfd on Linux)
	return !errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// newLockInfo describes a lock of this process on host; tryLock sets Created when it takes it.
func newLockInfo(req LockRequest, host string) LockInfo {
	who := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		who = u.Username
	}
	if who == "" {
		who = "unknown"
	}
	return LockInfo{
		ID:        uuid.NewString(),
		Operation: clip(req.Operation, maxLockField),
		Who:       clip(who+"@"+host, maxLockField),
		Host:      clip(host, maxLockField),
		PID:       os.Getpid(),
		Version:   clip(req.Version, maxLockField),
		Info:      clip(req.Info, maxLockInfo),
	}
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Write stores st as the state's next serial and returns what it wrote. It re-reads the state
// first and fails with ErrLockLost unless this lock still holds it; after a lost
// compare-and-swap it reads again, re-checking the lock. What it writes is st with the state's
// Format, Name, Lineage and next Serial (st itself is left unchanged).
func (l *Lock) Write(ctx context.Context, st *State) (*State, error) {
	return l.s.write(ctx, l.held, st)
}

// Unlock releases the lock; ErrLockLost when it is no longer this lock's.
func (l *Lock) Unlock(ctx context.Context) error {
	return l.s.unlock(ctx, l.held)
}

// held reads the state and checks that this lock still holds it.
func (l *Lock) held(ctx context.Context) (*record, error) {
	rec, err := l.s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	switch cur := rec.lock(); {
	case cur == nil:
		return nil, fmt.Errorf("%w: the state %q is no longer locked by this run (lock id %s): it was force-unlocked, or its device deleted", ErrLockLost, l.s.name, l.info.ID)
	case cur.ID != l.info.ID:
		return nil, fmt.Errorf("%w: the state %q is no longer locked by this run (lock id %s) but by %s", ErrLockLost, l.s.name, l.info.ID, *cur)
	}
	return rec, nil
}

// ForceUnlock removes the state's lock, but only if its id is id (ErrLockID otherwise, and
// when the state is not locked), so that a lock taken since the caller looked is left alone.
func (s *Store) ForceUnlock(ctx context.Context, id string) error {
	return s.unlock(ctx, func(ctx context.Context) (*record, error) {
		rec, err := s.fetch(ctx)
		if err != nil {
			return nil, err
		}
		switch cur := rec.lock(); {
		case cur == nil:
			return nil, fmt.Errorf("%w: the state %q is not locked", ErrLockID, s.name)
		case cur.ID != id:
			return nil, fmt.Errorf("%w: the state %q is locked by %s, not with the id %s", ErrLockID, s.name, *cur, id)
		}
		return rec, nil
	})
}

// unlock removes the lock of the record guard returns (guard refuses a lock not to remove),
// guarding again after each lost compare-and-swap.
func (s *Store) unlock(ctx context.Context, guard func(context.Context) (*record, error)) error {
	return s.cas(ctx, guard, func(rec *record) error { return s.writeLock(ctx, rec, nil) })
}
