package registry

import (
	"sync"

	"go.etcd.io/bbolt"
)

// Group commit. Every store write of the registry goes through one committer: a writer
// submits its write while it holds the registry's mutex (so the store receives writes in the
// order the registry published them), releases the mutex, and waits until the write is on
// disk. Whoever waits first while no commit runs becomes the leader: it takes every write
// submitted so far and commits them in one bbolt transaction — one fsync — while later
// writers queue up for the next one. So concurrent writers (job workers, REST clients, MQTT
// sessions) share fsyncs, throughput is bounded by the CPU rather than the disk, and a write
// is acknowledged only once it is durable. This is bbolt's DB.Batch idea, with submission
// split from waiting so that order is the registry's, not the goroutines' arrival order.
type committer struct {
	db      *bbolt.DB
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []*commitOp
	leading bool
}

// commitOp is one submitted write. Its write may be set after submission (prepare), so that
// encoding happens outside the registry's mutex; ready is closed once it is.
type commitOp struct {
	write func(tx *bbolt.Tx) error
	ready chan struct{}
	done  bool
	err   error
}

func newCommitter(db *bbolt.DB) *committer {
	c := &committer{db: db}
	c.cond = sync.NewCond(&c.mu)
	return c
}

// submit queues write; call it with the registry's mutex held.
func (c *committer) submit(write func(tx *bbolt.Tx) error) *commitOp {
	op := c.reserve()
	op.prepare(write, nil)
	return op
}

// reserve queues a write whose content prepare gives later; call it with the registry's
// mutex held, so the write keeps its place in publish order.
func (c *committer) reserve() *commitOp {
	op := &commitOp{ready: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, op)
	c.mu.Unlock()
	return op
}

// prepare sets a reserved write (err: it could not be encoded; it then fails alone).
func (op *commitOp) prepare(write func(tx *bbolt.Tx) error, err error) {
	if err != nil {
		write = func(*bbolt.Tx) error { return err }
	}
	op.write = write
	close(op.ready)
}

// wait blocks until op is on disk (or failed), leading commits while none runs.
func (c *committer) wait(op *commitOp) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !op.done {
		if c.leading || len(c.queue) == 0 {
			c.cond.Wait() // op is in the batch being written
			continue
		}
		c.leading = true
		batch := c.queue
		c.queue = nil
		c.mu.Unlock()
		c.commit(batch)
		c.mu.Lock()
		c.leading = false
		c.cond.Broadcast()
	}
	return op.err
}

// commit writes a batch in one transaction. If it fails, each write is retried alone, in
// order, so that one bad write (a value bbolt refuses) does not fail the others.
func (c *committer) commit(batch []*commitOp) {
	for _, op := range batch {
		<-op.ready // encoded by its writer just after it submitted
	}
	err := c.db.Update(func(tx *bbolt.Tx) error {
		for _, op := range batch {
			if err := op.write(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		for _, op := range batch {
			op.err = c.db.Update(op.write)
		}
	} else {
		for _, op := range batch {
			op.err = err
		}
	}
	c.mu.Lock()
	for _, op := range batch {
		op.done = true
	}
	c.mu.Unlock()
}

// writeSync submits and waits: for the registry's rare writes, which keep its mutex while
// they wait.
func (c *committer) writeSync(write func(tx *bbolt.Tx) error) error {
	return c.wait(c.submit(write))
}
