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
type rowStore struct {
	db      *bbolt.DB
	flushMu sync.Mutex // one flush at a time

	mu       sync.Mutex
	dirty    map[string][]byte
	inflight map[string][]byte
	kick     chan struct{}
}

func newRowStore(db *bbolt.DB) *rowStore {
	return &rowStore{db: db, dirty: make(map[string][]byte), kick: make(chan struct{}, 1)}
}

func (s *rowStore) put(row *hubapi.DeviceJob) {
	b, err := json.Marshal(row)
	if err != nil {
		panic(err) // DeviceJob holds only marshalable values
	}
	s.mu.Lock()
	s.dirty[rowKey(row.JobID, row.DeviceID)] = b
	full := len(s.dirty) >= flushRows
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// putDurable stores row and returns once it is on disk with every row put before it. A
// method job marks a device running this way before calling it, so that a hub killed during
// the call finds the row running at restart and never calls the device again for the job.
// Concurrent callers share flushes: whoever flushes writes every dirty row.
func (s *rowStore) putDurable(row *hubapi.DeviceJob) error {
	s.put(row)
	return s.flush()
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

// flush writes the dirty rows in one transaction.
func (s *rowStore) flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if len(s.dirty) == 0 {
		s.mu.Unlock()
		return nil
	}
	batch := s.dirty
	s.inflight = batch
	s.dirty = make(map[string][]byte, len(batch))
	s.mu.Unlock()
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketDeviceJobs))
		for k, v := range batch {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	s.mu.Lock()
	s.inflight = nil
	if err != nil {
		for k, v := range batch {
			if _, newer := s.dirty[k]; !newer {
				s.dirty[k] = v
			}
		}
	}
	s.mu.Unlock()
	return err
}

// writeDirect stores rows straight away (a job's initial "pending" rows).
func (s *rowStore) writeDirect(rows []*hubapi.DeviceJob) error {
	return s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketDeviceJobs))
		for _, r := range rows {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(rowKey(r.JobID, r.DeviceID)), v); err != nil {
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
