package sim

import (
	"container/heap"
	"sync"
	"time"

	"github.com/iotplan/iotplan/internal/hub/link"
)

// churner disconnects and reconnects the churning devices of the whole fleet on one timer
// goroutine (a min-heap of due times), as the echoer does for reports: no goroutine or timer
// per device. In-process devices leave and rejoin link on that goroutine (a map update and a
// connection-state write each); mqtt-mode devices disconnect and reconnect on background
// goroutines, at most MQTTOptions.Concurrency connecting at once, because a reconnect is a
// TLS handshake. When the hub cannot keep up with the configured rate, events run late
// rather than pile up.
type churner struct {
	s    *Sim
	l    *link.Hub
	mu   sync.Mutex
	due  churnHeap
	wake chan struct{}
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type churnItem struct {
	at    int64 // unix nanos
	d     *device
	cycle uint32 // 1-based: the cycle-th disconnect of the device
	back  bool   // false: disconnect at `at`; true: reconnect at `at`
}

type churnHeap []churnItem

func (h churnHeap) Len() int           { return len(h) }
func (h churnHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h churnHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *churnHeap) Push(x any)        { *h = append(*h, x.(churnItem)) }
func (h *churnHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func newChurner(s *Sim, l *link.Hub) *churner {
	return &churner{s: s, l: l, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// schedule plans d's first disconnect at a reproducible point of its first interval, so a
// group's devices spread over the interval instead of leaving together.
func (c *churner) schedule(d *device) {
	ch := d.rt.g.Churn
	first := ch.Interval(d.id, 1)
	phase := time.Duration(hash64("churn/phase", d.id, 0) % uint64(first+1))
	c.mu.Lock()
	heap.Push(&c.due, churnItem{at: time.Now().Add(phase).UnixNano(), d: d, cycle: 1})
	c.mu.Unlock()
}

// start runs the timer goroutine if anything churns.
func (c *churner) start() {
	c.mu.Lock()
	n := len(c.due)
	c.mu.Unlock()
	if n == 0 {
		return
	}
	c.wg.Add(1)
	go c.loop()
}

func (c *churner) loop() {
	defer c.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now().UnixNano()
		var ready []churnItem
		c.mu.Lock()
		for len(c.due) > 0 && c.due[0].at <= now && len(ready) < 4096 {
			ready = append(ready, heap.Pop(&c.due).(churnItem))
		}
		c.mu.Unlock()
		for _, it := range ready {
			select {
			case <-c.done:
				return
			default:
			}
			c.run(it)
		}
		c.mu.Lock()
		wait := time.Hour
		if len(c.due) > 0 {
			wait = time.Duration(c.due[0].at - time.Now().UnixNano())
		}
		c.mu.Unlock()
		if wait <= 0 {
			continue
		}
		if !waitFor(timer, wait, c.wake, c.done) {
			return
		}
	}
}

// run performs one churn event and schedules the next one of the device.
func (c *churner) run(it churnItem) {
	d, ch, s := it.d, it.d.rt.g.Churn, c.s
	now := time.Now()
	var next churnItem
	if !it.back {
		s.stats.disconnects.Add(1)
		if d.mq != nil {
			if cl := d.mq.disconnect(true); cl != nil {
				s.goBackground(func() { cl.Disconnect(disconnectQuiet) })
			}
		} else if d.disc != nil {
			d.disc()
			d.disc = nil
			s.connected.Add(-1)
		}
		next = churnItem{at: now.Add(ch.Downtime(d.id, uint64(it.cycle))).UnixNano(), d: d, cycle: it.cycle, back: true}
	} else {
		if d.mq != nil {
			d.mq.comeBack()
			s.goBackground(d.mq.reconnect)
		} else if d.disc == nil {
			d.disc = c.l.Connect(d.id, d)
			s.connected.Add(1)
			s.stats.reconnects.Add(1)
		}
		next = churnItem{at: now.Add(ch.Interval(d.id, uint64(it.cycle)+1)).UnixNano(), d: d, cycle: it.cycle + 1}
	}
	c.mu.Lock()
	heap.Push(&c.due, next)
	c.mu.Unlock()
}

// close stops the timer goroutine; devices stay as they are (Sim.Close disconnects them).
func (c *churner) close() {
	c.once.Do(func() { close(c.done) })
	c.wg.Wait()
}
