package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/state"
)

// seedState writes a state with a twin and a method resource to the named state of h and
// returns its store.
func seedState(t *testing.T, h *hub.Hub, name string) *state.Store {
	t.Helper()
	ctx := context.Background()
	s, err := state.Open(testClient(t, h), name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Lock(ctx, state.LockRequest{Operation: "apply", Version: "test"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock(ctx)
	_, err = l.Write(ctx, &state.State{Resources: []state.Resource{
		{Addr: "twin.doors", Kind: "twin", Target: "tags.kind = 'door'", Serial: 1,
			Keys: map[string]json.RawMessage{"desired.floor": json.RawMessage(`3`), "tags.owner": json.RawMessage(`"facilities"`)}},
		{Addr: "method.lock", Kind: "method", Target: "*", Method: "lockDoor", Serial: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStateListAndShow(t *testing.T) {
	h, dir := testHub(t, "")
	hubArgs := []string{"-dev", "-data", dir}

	r := iotplan(t, append([]string{"state", "list"}, hubArgs...)...)
	if r.code != 0 || r.out != "" {
		t.Fatalf("list of an empty state: exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	r = iotplan(t, append([]string{"state", "show"}, hubArgs...)...)
	if r.code != 0 || !strings.Contains(r.out, "empty") {
		t.Errorf("show of an empty state: exit %d\n%s%s", r.code, r.out, r.err)
	}

	r = iotplan(t, append([]string{"state", "rm", "twin.doors"}, hubArgs...)...)
	if r.code != 1 || !strings.Contains(r.err, "no resource twin.doors") {
		t.Errorf("rm on a hub without a state: exit %d, %q", r.code, r.err)
	}
	if ok, err := testClient(t, h).DeviceExists(context.Background(), state.DeviceID(state.DefaultName)); ok || err != nil {
		t.Errorf("list, show and a refused rm created the state device (%v, %v)", ok, err)
	}

	seedState(t, h, state.DefaultName)
	r = iotplan(t, append([]string{"state", "list"}, hubArgs...)...)
	if r.code != 0 || r.out != "method.lock\ntwin.doors\n" {
		t.Errorf("list: exit %d, out %q, err %q", r.code, r.out, r.err)
	}
	r = iotplan(t, append([]string{"state", "show"}, hubArgs...)...)
	for _, want := range []string{"serial:  1", "lineage: ", "twin.doors\n", `target = "tags.kind = 'door'"`,
		"desired.floor = 3", `tags.owner = "facilities"`, `method = "lockDoor"`} {
		if r.code != 0 || !strings.Contains(r.out, want) {
			t.Errorf("show lacks %q (exit %d):\n%s%s", want, r.code, r.out, r.err)
		}
	}
	r = iotplan(t, append([]string{"state", "show", "twin.doors"}, hubArgs...)...)
	if r.code != 0 || !strings.HasPrefix(r.out, "twin.doors\n") || strings.Contains(r.out, "method.lock") {
		t.Errorf("show twin.doors: exit %d\n%s%s", r.code, r.out, r.err)
	}
	r = iotplan(t, append([]string{"state", "show", "-json"}, hubArgs...)...)
	var st state.State
	if err := json.Unmarshal([]byte(r.out), &st); err != nil || r.code != 0 || st.Serial != 1 || len(st.Resources) != 2 {
		t.Errorf("show -json: exit %d, %v: %+v", r.code, err, st)
	}
	r = iotplan(t, append([]string{"state", "show", "twin.nope"}, hubArgs...)...)
	if r.code != 1 || !strings.Contains(r.err, "no resource twin.nope") {
		t.Errorf("show of an unknown address: exit %d, %q", r.code, r.err)
	}
	r = iotplan(t, append([]string{"state", "list", "-state", "other"}, hubArgs...)...)
	if r.code != 0 || r.out != "" {
		t.Errorf("list -state other: exit %d, out %q, err %q", r.code, r.out, r.err)
	}
}

func TestStateRm(t *testing.T) {
	h, dir := testHub(t, "")
	hubArgs := []string{"-dev", "-data", dir}
	s := seedState(t, h, state.DefaultName)
	ctx := context.Background()

	r := iotplan(t, append([]string{"state", "rm", "twin.doors", "twin.nope"}, hubArgs...)...)
	if r.code != 1 || !strings.Contains(r.err, "twin.nope") || !strings.Contains(r.err, "nothing was removed") {
		t.Errorf("rm of an unknown address: exit %d, %q", r.code, r.err)
	}
	r = iotplan(t, append([]string{"state", "rm", "twin.doors"}, hubArgs...)...)
	if r.code != 0 || !strings.Contains(r.out, "Removed twin.doors") || !strings.Contains(r.out, "devices were not changed") {
		t.Fatalf("rm: exit %d\n%s%s", r.code, r.out, r.err)
	}
	st, lock, err := s.ReadWithLock(ctx)
	if err != nil || len(st.Resources) != 1 || st.Resources[0].Addr != "method.lock" || st.Serial != 2 || lock != nil {
		t.Errorf("after rm: %+v, lock %v, %v", st, lock, err)
	}

	// Locked by another run: one line saying who and how to unlock; nothing removed.
	l, err := s.Lock(ctx, state.LockRequest{Operation: "apply", Version: "9.9"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r = iotplan(t, append([]string{"state", "rm", "method.lock"}, hubArgs...)...)
	for _, want := range []string{"locked by", "for apply", l.Info().ID, "iotplan force-unlock " + l.Info().ID} {
		if r.code != 1 || !strings.Contains(r.err, want) {
			t.Errorf("rm of a locked state lacks %q: exit %d, %q", want, r.code, r.err)
		}
	}
	if strings.Count(strings.TrimSpace(r.err), "\n") != 0 {
		t.Errorf("the lock error is not one line: %q", r.err)
	}
	// -lock-timeout waits for the holder.
	go func() {
		time.Sleep(500 * time.Millisecond)
		_ = l.Unlock(ctx)
	}()
	r = iotplan(t, append([]string{"state", "rm", "-lock-timeout", "30s", "method.lock"}, hubArgs...)...)
	if r.code != 0 {
		t.Errorf("rm -lock-timeout: exit %d\n%s%s", r.code, r.out, r.err)
	}
	if st, _ := s.Read(ctx); len(st.Resources) != 0 {
		t.Errorf("after rm -lock-timeout: %+v", st.Resources)
	}
}

func TestStateRmWithoutLock(t *testing.T) {
	h, dir := testHub(t, "")
	s := seedState(t, h, state.DefaultName)
	ctx := context.Background()
	l, err := s.Lock(ctx, state.LockRequest{Operation: "apply"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := iotplan(t, "state", "rm", "-lock=false", "-dev", "-data", dir, "twin.doors")
	if r.code != 0 {
		t.Fatalf("rm -lock=false: exit %d\n%s%s", r.code, r.out, r.err)
	}
	st, lock, err := s.ReadWithLock(ctx)
	if err != nil || len(st.Resources) != 1 || lock == nil || lock.ID != l.Info().ID {
		t.Errorf("after rm -lock=false: %+v, lock %v (want the holder's lock kept), %v", st.Resources, lock, err)
	}
}

func TestForceUnlock(t *testing.T) {
	h, dir := testHub(t, "")
	hubArgs := []string{"-dev", "-data", dir}
	s := seedState(t, h, state.DefaultName)
	ctx := context.Background()

	r := iotplan(t, append([]string{"force-unlock", "-force", "some-id"}, hubArgs...)...)
	if r.code != 1 || !strings.Contains(r.err, "not locked") {
		t.Errorf("force-unlock of an unlocked state: exit %d, %q", r.code, r.err)
	}
	l, err := s.Lock(ctx, state.LockRequest{Operation: "apply"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	id := l.Info().ID
	locked := func() bool {
		_, lock, err := s.ReadWithLock(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return lock != nil
	}

	r = iotplan(t, append([]string{"force-unlock", "-force", "wrong-id"}, hubArgs...)...)
	if r.code != 1 || !strings.Contains(r.err, "nothing was unlocked") || !locked() {
		t.Errorf("force-unlock with a wrong id: exit %d, %q", r.code, r.err)
	}
	r = iotplan(t, append([]string{"force-unlock", id}, hubArgs...)...)
	if r.code != 1 || !strings.Contains(r.err, "no terminal") || !locked() {
		t.Errorf("force-unlock without a terminal nor -force: exit %d, %q", r.code, r.err)
	}
	r = onTerminal(t, "no\n", append([]string{"force-unlock", id}, hubArgs...)...)
	if r.code != 1 || !strings.Contains(r.err, "Only 'yes'") || !strings.Contains(r.err, "cancelled") || !locked() {
		t.Errorf("force-unlock answered no: exit %d, %q", r.code, r.err)
	}
	r = onTerminal(t, "yes\n", append([]string{"force-unlock", id}, hubArgs...)...)
	if r.code != 0 || !strings.Contains(r.out, "unlocked") || locked() {
		t.Errorf("force-unlock answered yes: exit %d, %q %q", r.code, r.out, r.err)
	}
	if _, err := l.Write(ctx, &state.State{}); !errors.Is(err, state.ErrLockLost) {
		t.Errorf("the old holder's write = %v, want ErrLockLost", err)
	}

	l, err = s.Lock(ctx, state.LockRequest{Operation: "apply"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r = iotplan(t, append([]string{"force-unlock", "-force", l.Info().ID}, hubArgs...)...)
	if r.code != 0 || locked() {
		t.Errorf("force-unlock -force: exit %d, %q", r.code, r.err)
	}
}

// onTerminal runs the CLI in-process with a terminal on standard input that answers input.
func onTerminal(t *testing.T, input string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := run(ctx, args, Streams{In: strings.NewReader(input), InTTY: true, Out: &out, Err: &errb, Width: 100})
	return result{code, out.String(), errb.String()}
}
