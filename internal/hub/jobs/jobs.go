// Package jobs runs IoT Hub jobs v2 (scheduleUpdateTwin, scheduleDeviceMethod) in the
// background for the local hub, the way Azure IoT Hub does
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs, https://learn.microsoft.com/rest/api/iothub/service/jobs).
//
// Lifecycle. Create validates the request (a startTime more than 168 hours ahead is refused, as
// a live hub was seen to: hubapi.MaxJobStartAhead) and answers the minimal
// {jobId,type,status:"queued"}.
// A job whose startTime is in the future becomes "scheduled"; at its startTime it becomes
// "running": the devices matching queryCondition are selected once (a snapshot of ids; "" and
// "*" mean every device) and each gets a devices.jobs row "pending". Workers then update each
// twin (merge patch with If-Match "*") or invoke the method, with bounded concurrency and an
// optional hub-wide device-operation rate, and the job ends "completed". A queryCondition that
// does not parse in Options.QueryDialect (by default the documented query language, so e.g.
// IS_STRING fails) fails the job asynchronously with failureReason holding the parse error, as
// Azure does ("SQL query parse failed", Azure/azure-iot-sdk-csharp#40); PUT only checks its
// length. Cancel turns
// the job "cancelled" at once and its unfinished devices "canceled" (one L, as the hub spells
// device-job statuses).
//
// Choices where Azure's behaviour is undocumented:
//   - A method job counts a device as succeeded when the device answered, whatever status it
//     answered with (Azure's device-job row is "completed" with outcome.deviceMethodResponse
//     carrying the device's status); clients that need 2xx must read the outcome. Devices that
//     did not answer (404103 DeviceNotOnline, 504101 GatewayTimeout) are failed, with the hub
//     error's name and message in the row's error {code, description}.
//   - maxExecutionTimeInSeconds (≤0 → 3600) counts from the moment the job starts running. When
//     it runs out, calls in flight are abandoned, every unfinished device is failed with code
//     "JobExpired", and the job ends "failed" with a failureReason saying so.
//   - Canceled devices are counted in deviceCount only (the statistics have no canceled
//     counter), so after a cancel the counters need not add up to deviceCount.
//   - MaxConcurrentJobs counts queued, scheduled and running jobs (the amenzhinsky test suite
//     cancels its future-dated job to stay under the free tier's limit of one).
//   - Restart (New over a database holding a running job) resumes it: devices still pending are
//     processed; for twin jobs devices caught "running" are redone (the patch is idempotent);
//     for method jobs they are failed with code "JobInterrupted", because whether the device
//     ran the method is unknown and calling it twice is not harmless. maxExecutionTimeInSeconds
//     keeps counting from the original start, so a job that was down too long expires honestly.
//   - Statistics are live in memory; device rows are written to bbolt in batches (every 100 ms
//     or 4096 rows) and reads overlay the rows not yet written, so devices.jobs never lags the
//     statistics.
//
// Persistence: buckets "jobs" (jobId → record JSON) and "devicejobs" (jobId "/" deviceId →
// hubapi.DeviceJob JSON) in the hub's bbolt file.
//
// History: finished jobs and their device rows are purged HistoryTTL (30 days) after they
// ended, at New and then hourly (retention.go).
//
// Imports: hubapi, huberr, registry (error-code names only), query, jsonappend, bbolt, stdlib.
package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Twins is the part of the registry jobs use; *registry.Registry satisfies it.
type Twins interface {
	ForEachTwin(fn func(doc any) bool)
	UpdateTwin(deviceID string, patch hubapi.TwinPatch, ifMatch string) (map[string]any, error)
}

// Invoker routes direct methods; *link.Hub satisfies it.
type Invoker interface {
	Invoke(ctx context.Context, deviceID string, m hubapi.CloudToDeviceMethod) (hubapi.CloudToDeviceMethodResult, error)
}

// Options configures a Manager. The zero value is usable.
type Options struct {
	Now                func() time.Time // nil = time.Now; scheduling and expiry follow this clock
	MaxConcurrentJobs  int              // 0 = unlimited; queued+scheduled+running jobs
	DeviceOpsPerSecond float64          // 0 = unlimited; shared by all jobs of the hub
	Logger             *slog.Logger     // nil = discard
	Workers            int              // device operations in flight per job; 0 = DefaultWorkers
	// QueryDialect is the query language of queryConditions (query.Documented, the zero
	// value, or query.Extended).
	QueryDialect query.Dialect
	// OnQuery, if set, is called with every queryCondition a job evaluates when it starts
	// running and the error that failed the job (nil when it was accepted).
	OnQuery func(text string, err error)
	// Ready, when set, is closed once the hub's devices could connect (the simulated fleet
	// started): method jobs resumed after a restart wait for it before calling devices.
	Ready <-chan struct{}
}

// DefaultWorkers is the number of concurrent device operations of one job: a method job
// stores each device's running row before calling it (putDurable), so many calls in flight
// share each flush. A twin job keeps at least TwinWorkers devices in flight, twinStep a
// worker: their writes wait for the registry's group commit, so many share each transaction
// (internal/hub/registry, commit.go); 1,024 in flight ran a twin job over 100,000 devices
// 10% faster than 512, and 2,048 no faster (measured before devices were written in steps).
// The hub's job-device-operation throttle, not these numbers, sets a tier's pace.
const (
	DefaultWorkers = 256
	TwinWorkers    = 1024
	// twinStep is how many devices a twin job's worker writes at once (TwinWorkers/twinStep
	// workers): one registry lock and one commit record for all of them.
	twinStep = 32
)

// Limits from the hub's documentation (hubapi and query hold the numbers).
const (
	MaxJobIDLength          = hubapi.MaxJobIDLength
	MaxQueryConditionLength = query.MaxLength
	DefaultMaxExecution     = 3600 // seconds, when maxExecutionTimeInSeconds ≤ 0
)

// Error codes of device rows that are not hub error names.
const (
	CodeJobExpired     = "JobExpired"
	CodeJobInterrupted = "JobInterrupted"
)

// tick is how often the scheduler looks at the clock: start times and expiry follow
// Options.Now, which tests replace with a fake clock, so the scheduler polls it.
var tick = 50 * time.Millisecond

var (
	errCancelled = errors.New("job cancelled")
	errExpired   = errors.New("job expired")
	errClosing   = errors.New("job manager closing")
)

// record is what the "jobs" bucket holds.
type record struct {
	Seq          uint64             `json:"seq"`
	Job          hubapi.JobResponse `json:"job"`
	RunningSince *time.Time         `json:"runningSince,omitempty"`
	SelectedAt   *time.Time         `json:"selectedAt,omitempty"` // set once every device row exists
}

type job struct {
	rec    record                  // guarded by Manager.mu
	cancel context.CancelCauseFunc // non-nil while a runner is active
	done   chan struct{}           // closed when the runner exits
	// A twin job's patch, prepared once for all its devices (updateTwins).
	prepareOnce sync.Once
	prepared    *registry.PreparedPatch
	prepareErr  error
}

func (j *job) terminal() bool { return hubapi.JobEnded(j.rec.Job.Status) }

// Manager owns the jobs of one hub. It is safe for concurrent use.
type Manager struct {
	db      *bbolt.DB
	twins   Twins
	inv     Invoker
	opts    Options
	now     func() time.Time
	log     *slog.Logger
	limiter *limiter
	rows    *rowStore

	ctx  context.Context
	stop context.CancelCauseFunc
	wg   sync.WaitGroup
	wake chan struct{}

	saveMu sync.Mutex // orders record writes: snapshots are taken and written under it

	mu     sync.Mutex
	jobs   map[string]*job
	seq    uint64
	closed bool
}

// New opens the job store in db and starts the scheduler. Jobs that were running when the
// hub stopped are resumed (see the package doc).
func New(db *bbolt.DB, twins Twins, inv Invoker, opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	m := &Manager{
		db: db, twins: twins, inv: inv, opts: opts,
		now:  func() time.Time { return opts.Now().UTC() },
		log:  opts.Logger,
		jobs: make(map[string]*job),
		wake: make(chan struct{}, 1),
	}
	if opts.DeviceOpsPerSecond > 0 {
		m.limiter = &limiter{interval: time.Duration(float64(time.Second) / opts.DeviceOpsPerSecond)}
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		for _, b := range []string{bucketJobs, bucketDeviceJobs} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte(bucketJobs)).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("job %q: %w", k, err)
			}
			m.jobs[r.Job.JobID] = &job{rec: r}
			m.seq = max(m.seq, r.Seq)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: open store: %w", err)
	}
	m.rows = newRowStore(db)
	// Job history older than HistoryTTL goes at start and then periodically (retention.go).
	if _, err := m.purgeExpired(); err != nil {
		return nil, fmt.Errorf("jobs: purge expired history: %w", err)
	}
	m.ctx, m.stop = context.WithCancelCause(context.Background())
	m.wg.Add(3)
	go m.rows.loop(m.ctx, &m.wg)
	go m.schedule()
	go m.retain()
	return m, nil
}

// Close stops the scheduler and every running job promptly, writes what they did, and leaves
// unfinished jobs "running" in the store so the next New resumes them. Idempotent.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.stop(errClosing)
	m.wg.Wait()
	err := m.rows.flush()
	m.mu.Lock()
	ids := make([]string, 0, len(m.jobs))
	for id, j := range m.jobs {
		if j.rec.Job.Status == hubapi.JobStatusRunning {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		err = errors.Join(err, m.save(id))
	}
	return err
}

// Create validates req and queues the job. Errors are *huberr.Error (400 for bad requests,
// 409104 JobAlreadyExists, 429004 over MaxConcurrentJobs).
func (m *Manager) Create(req hubapi.JobRequest) (hubapi.JobResponse, error) {
	if err := validate(&req); err != nil {
		return hubapi.JobResponse{}, err
	}
	now := m.now()
	if req.StartTime != nil && req.StartTime.After(now.Add(hubapi.MaxJobStartAhead)) {
		return hubapi.JobResponse{}, huberr.New(huberr.ArgumentInvalid, "startTime %s is invalid: Must be within 168 hours.", req.StartTime.UTC().Format(time.RFC3339))
	}
	start := now
	if req.StartTime != nil && req.StartTime.After(now) {
		start = req.StartTime.UTC()
	}
	maxExec := req.MaxExecutionTimeInSeconds
	if maxExec <= 0 {
		maxExec = DefaultMaxExecution
	}
	resp := hubapi.JobResponse{
		JobID:                     req.JobID,
		QueryCondition:            req.QueryCondition,
		CreatedTime:               &now,
		StartTime:                 &start,
		MaxExecutionTimeInSeconds: maxExec,
		Type:                      req.Type,
		CloudToDeviceMethod:       req.CloudToDeviceMethod,
		UpdateTwin:                req.UpdateTwin,
		Status:                    hubapi.JobStatusQueued,
		DeviceJobStatistics:       &hubapi.DeviceJobStatistics{},
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return hubapi.JobResponse{}, huberr.New(huberr.ServiceUnavailable, "The hub is shutting down.")
	}
	if _, dup := m.jobs[req.JobID]; dup {
		m.mu.Unlock()
		return hubapi.JobResponse{}, huberr.New(huberr.JobAlreadyExists, "A job with id '%s' already exists.", req.JobID)
	}
	if limit := m.opts.MaxConcurrentJobs; limit > 0 {
		active := 0
		for _, j := range m.jobs {
			if !j.terminal() {
				active++
			}
		}
		if active >= limit {
			m.mu.Unlock()
			return hubapi.JobResponse{}, huberr.New(huberr.ThrottlingMaxActiveJobCountExceeded,
				"The maximum number of active jobs (%d) has been reached; wait for a job to finish or cancel one.", limit)
		}
	}
	m.seq++
	m.jobs[req.JobID] = &job{rec: record{Seq: m.seq, Job: resp}}
	m.mu.Unlock()
	if err := m.save(req.JobID); err != nil {
		m.mu.Lock()
		delete(m.jobs, req.JobID)
		m.mu.Unlock()
		m.log.Error("jobs: persist new job", "job", req.JobID, "err", err)
		return hubapi.JobResponse{}, huberr.New(huberr.ServerError, "Internal server error.")
	}
	m.kick()
	return hubapi.JobResponse{JobID: req.JobID, Type: req.Type, Status: hubapi.JobStatusQueued}, nil
}

// Get returns the job with live statistics; 404002 JobNotFound if unknown.
func (m *Manager) Get(jobID string) (hubapi.JobResponse, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.jobs[jobID]
	if j == nil {
		return hubapi.JobResponse{}, notFound(jobID)
	}
	return copyJob(j.rec.Job), nil
}

// Cancel cancels a queued, scheduled or running job; the response carries status
// "cancelled". A job that already ended is returned unchanged.
func (m *Manager) Cancel(jobID string) (hubapi.JobResponse, error) {
	m.mu.Lock()
	j := m.jobs[jobID]
	if j == nil {
		m.mu.Unlock()
		return hubapi.JobResponse{}, notFound(jobID)
	}
	if j.terminal() {
		resp := copyJob(j.rec.Job)
		m.mu.Unlock()
		return resp, nil
	}
	now := m.now()
	j.rec.Job.Status = hubapi.JobStatusCancelled
	j.rec.Job.EndTime = &now
	if j.cancel != nil {
		j.cancel(errCancelled)
	}
	resp := copyJob(j.rec.Job)
	m.mu.Unlock()
	if err := m.save(jobID); err != nil {
		m.log.Error("jobs: persist cancel", "job", jobID, "err", err)
	}
	return resp, nil
}

// List returns the jobs of the given type and status ("" = any), newest first.
func (m *Manager) List(jobType, status string) []hubapi.JobResponse {
	m.mu.Lock()
	js := make([]*job, 0, len(m.jobs))
	for _, j := range m.jobs {
		if (jobType == "" || j.rec.Job.Type == jobType) && (status == "" || j.rec.Job.Status == status) {
			js = append(js, j)
		}
	}
	sort.Slice(js, func(a, b int) bool { return js[a].rec.Seq > js[b].rec.Seq })
	out := make([]hubapi.JobResponse, len(js))
	for i, j := range js {
		out[i] = copyJob(j.rec.Job)
	}
	m.mu.Unlock()
	return out
}

// ForEachDeviceJob calls fn with every devices.jobs row (hubapi.DeviceJob's JSON shape,
// JSON-decoded), grouped by job. Return false to stop. fn may call back into the Manager.
func (m *Manager) ForEachDeviceJob(fn func(row map[string]any) bool) {
	m.rows.forEach(fn)
}

func notFound(jobID string) error {
	return huberr.New(huberr.JobNotFound, "Job with id '%s' was not found.", jobID)
}

func copyJob(r hubapi.JobResponse) hubapi.JobResponse {
	if r.DeviceJobStatistics != nil {
		s := *r.DeviceJobStatistics
		r.DeviceJobStatistics = &s
	}
	return r
}

func (m *Manager) kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// save writes the job's current record. Snapshots are taken under saveMu so a slower earlier
// save can never overwrite a later state.
func (m *Manager) save(jobID string) error {
	m.saveMu.Lock()
	defer m.saveMu.Unlock()
	m.mu.Lock()
	j := m.jobs[jobID]
	if j == nil {
		m.mu.Unlock()
		return nil
	}
	rec := j.rec
	rec.Job = copyJob(rec.Job)
	m.mu.Unlock()
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return m.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(bucketJobs)).Put([]byte(jobID), b)
	})
}
