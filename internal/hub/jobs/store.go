package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hubapi"
)

const (
	bucketJobs       = "jobs"
	bucketDeviceJobs = "devicejobs"
)

// Batching of device-row writes: one bbolt transaction per flush.
const (
	flushEvery  = 100 * time.Millisecond
	flushRows   = 4096
	selectBatch = 5000 // rows per transaction when a job's devices are selected
	readChunk   = 512  // rows read per transaction by forEach, so no read tx stays open long
	rowKeySep   = '/'  // job ids cannot contain it
)

func rowKey(jobID, deviceID string) string { return jobID + string(rowKeySep) + deviceID }

// rowStore persists devices.jobs rows. Rows changed since the last flush live in dirty (and,
// while a flush is being written, in inflight); reads overlay them on the stored rows.
//
// Flushes are group commits: puts are numbered (seq), a flush writes every row put so far in
// one transaction, and whoever needs its row on disk (putDurable, flush) either waits for the
// flush in progress or, when none runs, leads the next one — which also carries the rows of
// everyone who queued meanwhile. A method job's 256 workers thus share each fsync instead of
// queueing for a flush each (BENCHMARKS.md, "Lean twins").
type rowStore struct {
	db *bbolt.DB

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a flush ends
	dirty    map[string][]byte
	inflight map[string][]byte
	seq      uint64 // puts so far
	flushed  uint64 // every put numbered up to this is on disk
	flushing bool
	lastErr  error  // the outcome of the last flush, for those who waited on it
	lastUpTo uint64 // the puts that flush carried
	kick     chan struct{}
}

func newRowStore(db *bbolt.DB) *rowStore {
	s := &rowStore{db: db, dirty: make(map[string][]byte), kick: make(chan struct{}, 1)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// put stores row in memory (a flush writes it) and returns its number.
func (s *rowStore) put(row *hubapi.DeviceJob) uint64 {
	b := appendRow(make([]byte, 0, 256), row)
	s.mu.Lock()
	s.dirty[rowKey(row.JobID, row.DeviceID)] = b
	s.seq++
	n := s.seq
	full := len(s.dirty) >= flushRows
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return n
}

// putDurable stores row and returns once it is on disk with every row put before it. A
// method job marks a device running this way before calling it, so that a hub killed during
// the call finds the row running at restart and never calls the device again for the job.
func (s *rowStore) putDurable(row *hubapi.DeviceJob) error {
	return s.flushedTo(s.put(row))
}

func (s *rowStore) loop(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
		_ = s.flush() // a failed flush keeps its rows in memory; the next one retries them
	}
}

// flush returns once every row put so far is on disk.
func (s *rowStore) flush() error {
	s.mu.Lock()
	n := s.seq
	s.mu.Unlock()
	return s.flushedTo(n)
}

// flushedTo returns once the puts numbered up to n are on disk, or the flush that carried
// them failed (its rows stay dirty, for the next flush to retry).
func (s *rowStore) flushedTo(n uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.flushed < n {
		if s.flushing {
			s.cond.Wait()
			if s.lastErr != nil && s.lastUpTo >= n {
				return s.lastErr
			}
			continue
		}
		s.flushing = true
		upTo, batch := s.seq, s.dirty
		s.inflight = batch
		s.dirty = make(map[string][]byte, len(batch))
		s.mu.Unlock()
		err := s.write(batch)
		s.mu.Lock()
		s.inflight, s.flushing = nil, false
		s.lastErr, s.lastUpTo = err, upTo
		if err == nil {
			s.flushed = upTo
		} else {
			for k, v := range batch {
				if _, newer := s.dirty[k]; !newer {
					s.dirty[k] = v
				}
			}
		}
		s.cond.Broadcast()
		if err != nil {
			return err
		}
	}
	return nil
}

// write stores a batch of rows in one transaction.
func (s *rowStore) write(batch map[string][]byte) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketDeviceJobs))
		for k, v := range batch {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeDirect stores rows straight away (a job's initial "pending" rows).
func (s *rowStore) writeDirect(rows []*hubapi.DeviceJob) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketDeviceJobs))
		for _, r := range rows {
			if err := b.Put([]byte(rowKey(r.JobID, r.DeviceID)), appendRow(nil, r)); err != nil {
				return err
			}
		}
		return nil
	})
}

// deleteJob removes every stored row of a job (a selection interrupted by a restart is redone).
func (s *rowStore) deleteJob(jobID string) error {
	prefix := []byte(jobID + string(rowKeySep))
	return s.db.Update(func(tx *bbolt.Tx) error {
		c := tx.Bucket([]byte(bucketDeviceJobs)).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// jobRows calls fn with every row of one job as stored plus unflushed changes.
func (s *rowStore) jobRows(jobID string, fn func(r *hubapi.DeviceJob)) error {
	return s.scan([]byte(jobID+string(rowKeySep)), func(v []byte) bool {
		var r hubapi.DeviceJob
		if json.Unmarshal(v, &r) == nil {
			fn(&r)
		}
		return true
	})
}

// forEach yields every row as a JSON-decoded map.
func (s *rowStore) forEach(fn func(row map[string]any) bool) {
	_ = s.scan(nil, func(v []byte) bool {
		var row map[string]any
		if json.Unmarshal(v, &row) != nil {
			return true
		}
		return fn(row)
	})
}

// scan walks stored rows with the given key prefix in chunks (no read transaction is held
// while fn runs) and substitutes unflushed versions.
func (s *rowStore) scan(prefix []byte, fn func(v []byte) bool) error {
	var after []byte
	for {
		type kv struct{ k, v []byte }
		var chunk []kv
		err := s.db.View(func(tx *bbolt.Tx) error {
			c := tx.Bucket([]byte(bucketDeviceJobs)).Cursor()
			var k, v []byte
			if after == nil {
				k, v = c.Seek(prefix)
			} else {
				k, v = c.Seek(after)
				if bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for ; k != nil && bytes.HasPrefix(k, prefix) && len(chunk) < readChunk; k, v = c.Next() {
				chunk = append(chunk, kv{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if err != nil || len(chunk) == 0 {
			return err
		}
		s.mu.Lock()
		for i := range chunk {
			if v, ok := s.dirty[string(chunk[i].k)]; ok {
				chunk[i].v = v
			} else if v, ok := s.inflight[string(chunk[i].k)]; ok {
				chunk[i].v = v
			}
		}
		s.mu.Unlock()
		for _, e := range chunk {
			if !fn(e.v) {
				return nil
			}
		}
		after = chunk[len(chunk)-1].k
	}
}
