package jobs

import (
	"time"

	"go.etcd.io/bbolt"
)

// HistoryTTL is how long the hub keeps a finished job and its devices.jobs rows: "job history
// … retained up to 30 days" (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs). There is no delete API for v2 jobs; a job
// older than this disappears from GET /jobs/v2/{id} (404002), the jobs query and devices.jobs.
const HistoryTTL = 30 * 24 * time.Hour

// retentionTick is how often the retention loop looks for expired jobs (it also runs once at
// New). The age is measured on Options.Now, so tests with a fake clock lower the tick.
var retentionTick = time.Hour

// retain runs purgeExpired every retentionTick until the manager closes.
func (m *Manager) retain() {
	defer m.wg.Done()
	t := time.NewTicker(retentionTick)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			if _, err := m.purgeExpired(); err != nil {
				m.log.Warn("jobs: purge of expired job history failed", "err", err)
			}
		}
	}
}

// purgeExpired deletes the finished jobs (completed, failed, cancelled) whose endTime (or,
// without one, createdTime) is older than HistoryTTL, with their device rows, and reports how
// many it removed. Jobs that have not finished are never purged, however old [inferred: the
// TTL is documented for "job history"].
func (m *Manager) purgeExpired() (int, error) {
	cutoff := m.now().Add(-HistoryTTL)
	m.mu.Lock()
	var ids []string
	for id, j := range m.jobs {
		if !j.terminal() {
			continue
		}
		at := j.rec.Job.EndTime
		if at == nil {
			at = j.rec.Job.CreatedTime
		}
		if at != nil && at.Before(cutoff) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		delete(m.jobs, id)
	}
	m.mu.Unlock()
	if len(ids) == 0 {
		return 0, nil
	}
	// Rows of a finished job were flushed long ago (rows are written within 100 ms); write
	// anything pending first so that a late flush cannot resurrect a purged row.
	if err := m.rows.flush(); err != nil {
		return 0, err
	}
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	err := m.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(bucketJobs))
		for _, id := range ids {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := m.rows.deleteJob(id); err != nil {
			return 0, err
		}
	}
	m.log.Info("jobs: purged expired job history", "jobs", len(ids))
	return len(ids), nil
}
