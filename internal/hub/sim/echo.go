package sim

import (
	"container/heap"
	"strings"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hub/registry"
)

// echoer reports desired changes back as reported properties after each device's delay, for
// the whole fleet with one timer goroutine (a min-heap of due times) and a few reporting
// workers: no goroutine or timer per device. Changes that arrive while a device's echo is
// pending are merged into it, so a burst becomes one reported patch.
type echoer struct {
	rep   Reporter
	mu    sync.Mutex
	due   echoHeap
	wake  chan struct{}
	slots chan struct{} // one per echo being reported (echoWorkers)
	done  chan struct{}
	wg    sync.WaitGroup
}

type echoItem struct {
	at time.Time
	d  *device
}

type echoJob struct {
	d     *device
	patch map[string]any
}

type echoHeap []echoItem

func (h echoHeap) Len() int           { return len(h) }
func (h echoHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h echoHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *echoHeap) Push(x any)        { *h = append(*h, x.(echoItem)) }
func (h *echoHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// echoWorkers bounds the echoes reported at once: each report waits for the registry's group
// commit (an fsync), so a few reporters would echo a few thousand devices a second while a
// twin job writes tens of thousands, and pending echoes would pile up in memory; many share
// each commit instead. Reporters are goroutines started per echo, up to this bound, so an
// idle fleet has none.
const echoWorkers = 256

func newEchoer(rep Reporter) *echoer {
	e := &echoer{rep: rep, wake: make(chan struct{}, 1), slots: make(chan struct{}, echoWorkers), done: make(chan struct{})}
	e.wg.Add(1)
	go e.loop()
	return e
}

// add queues patch for d's next echo. It never blocks on the reporter.
func (e *echoer) add(d *device, patch map[string]any, delay time.Duration) {
	e.mu.Lock()
	first := d.pending == nil
	if first {
		d.pending = make(map[string]any, len(patch))
	}
	mergeInto(d.pending, patch)
	if first {
		heap.Push(&e.due, echoItem{at: time.Now().Add(delay), d: d})
	}
	earliest := first && e.due[0].d == d
	e.mu.Unlock()
	if earliest {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

func (e *echoer) loop() {
	defer e.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var ready []echoJob
		e.mu.Lock()
		for len(e.due) > 0 && !e.due[0].at.After(now) {
			it := heap.Pop(&e.due).(echoItem)
			ready = append(ready, echoJob{d: it.d, patch: it.d.pending})
			it.d.pending = nil
		}
		wait := time.Hour
		if len(e.due) > 0 {
			wait = e.due[0].at.Sub(now)
		}
		e.mu.Unlock()
		for len(ready) > 0 {
			n := 1
			if ready[0].d.mq == nil { // in-process echoes go in batches (reportBatch)
				for n < len(ready) && n < echoBatch && ready[n].d.mq == nil {
					n++
				}
			}
			select {
			case e.slots <- struct{}{}:
			case <-e.done:
				return
			}
			e.wg.Add(1)
			go e.report(ready[:n:n])
			ready = ready[n:]
		}
		if !waitFor(timer, wait, e.wake, e.done) {
			return
		}
	}
}

// echoBatch is how many in-process echoes one reporter writes at once, when the Reporter can
// (batchReporter: one registry lock and one commit record for all).
const echoBatch = 64

// batchReporter is optionally implemented by a Reporter (*registry.Registry has it).
type batchReporter interface {
	PatchReportedBatch(deviceIDs []string, patches []map[string]any) []error
}

// report sends echoes: an MQTT device's alone, in-process ones together. A failure (device
// deleted meanwhile, hub closing) only loses that echo, as it would for a real device.
func (e *echoer) report(jobs []echoJob) {
	defer func() { <-e.slots; e.wg.Done() }()
	if br, ok := e.rep.(batchReporter); ok && len(jobs) > 1 {
		ids, patches := make([]string, len(jobs)), make([]map[string]any, len(jobs))
		for i, j := range jobs {
			ids[i], patches[i] = j.d.id, j.patch
		}
		br.PatchReportedBatch(ids, patches)
		return
	}
	for _, j := range jobs {
		if j.d.mq != nil {
			j.d.mq.report(j.patch)
			continue
		}
		_, _ = e.rep.PatchReported(j.d.id, j.patch)
	}
}

func (e *echoer) close() {
	close(e.done)
	e.wg.Wait()
}

// mergeInto applies a JSON merge patch to dst, keeping nulls (they delete reported keys when
// the echo is applied). Values are deep-copied: the patch belongs to the caller. Keys starting
// with '$' ($version, $metadata) are the hub's, not the device's, and are skipped.
func mergeInto(dst, patch map[string]any) {
	for k, v := range patch {
		if strings.HasPrefix(k, "$") {
			continue
		}
		if pm, ok := v.(map[string]any); ok {
			dm, ok := dst[k].(map[string]any)
			if !ok {
				dm = make(map[string]any, len(pm))
				dst[k] = dm
			}
			mergeInto(dm, pm)
			continue
		}
		dst[k] = registry.CloneJSON(v)
	}
}

// waitFor rearms timer for wait and blocks until it fires or wake is signalled (true), or
// done is closed (false). It is the sleep of the fleet-wide timer goroutines (echo, churn),
// which wake early when an earlier due time is added.
func waitFor(timer *time.Timer, wait time.Duration, wake <-chan struct{}, done <-chan struct{}) bool {
	if !timer.Stop() {
		select {
		case <-timer.C:
		default:
		}
	}
	timer.Reset(wait)
	select {
	case <-timer.C:
		return true
	case <-wake:
		return true
	case <-done:
		return false
	}
}
