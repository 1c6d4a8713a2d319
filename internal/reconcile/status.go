package reconcile

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/state"
)

// Status measures each resource of the configuration the way IoT Hub's automatic device
// management reports a configuration's metrics — targeted, applied, and custom metrics that
// are each one COUNT query
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-automatic-device-management#metrics) —
// with aggregate queries in the documented dialect only, so the hub calls depend on the
// configuration, never on the number of devices. Per twin resource, at most three queries:
//
//   - SELECT connectionState AS v, COUNT() AS n … WHERE <target> GROUP BY connectionState:
//     targeted (the sum) and disconnected (the 'Disconnected' group), in one query;
//   - desired in sync: COUNT() of the target AND every managed desired property and tag
//     equal to its value (convergedCondition), as a plan counts converged devices;
//   - reported in sync: COUNT() of the target AND every managed desired property reported
//     with that value (ReportedLeaves): what devices say they took.
//
// Per method resource: the connectionState GROUP BY, and for a run-once method one COUNT()
// of the devices whose run record holds the current triggers' hash (methods.go). A statement
// two resources share (a method reusing a twin's target) is sent once. Failed devices come
// from the last apply the state records (state.LastApply): one job GET per job of the
// resource, whose deviceJobStatistics.failedCount the hub keeps with the job
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-jobs) — never a read per device.

// StatusHub is what Status reads: the fleet, with queries, and the last apply's jobs.
// *hubclient.Client is one.
type StatusHub interface {
	Querier
	GetJob(ctx context.Context, jobID string) (hubapi.JobResponse, error)
}

// StatusOptions tune Status. The zero value is usable.
type StatusOptions struct {
	// Hub is the hub's host name, for the report (never a connection string).
	Hub string
	// Now is when the status is taken; zero = time.Now().
	Now time.Time
	// Prior is the state on the hub: its last apply gives the failed devices. StateName names
	// it (run-once methods' records derive from it; "" = state.DefaultName).
	Prior     *state.State
	StateName string
}

// Metric is a device count, or, when NA is set, why the hub cannot count it.
type Metric struct {
	Devices int
	NA      string
}

// Known reports whether the metric was counted.
func (m *Metric) Known() bool { return m != nil && m.NA == "" }

// ConnectionDisconnected is the connectionState of a device with no connection to the hub
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins#device-twins).
const ConnectionDisconnected = "Disconnected"

// StatusReport is what Status measured.
type StatusReport struct {
	Hub       string
	StateName string
	Observed  time.Time
	// LastApply is the last apply the state records as finished (nil: none yet).
	LastApply *state.LastApply
	Resources []ResourceStatus
	// Notes are what the reader must know about the whole report.
	Notes    []string
	HubCalls map[string]int
	HubWait  *HubWait
}

// ResourceStatus is one resource's metrics. A nil metric does not apply to the resource:
// desired and reported in sync to methods, ran to all but run-once methods, failed to
// resources the last apply ran no job for.
type ResourceStatus struct {
	Addr            string
	Kind            string
	Target          string // as written (query.Format)
	SensitiveTarget bool
	Method          string
	Targeted        int
	Disconnected    int
	DesiredInSync   *Metric
	ReportedInSync  *Metric
	// Ran counts the targeted devices whose run record holds the current triggers (RunTag is
	// the tag of the record).
	Ran    *Metric
	RunTag string
	// Failed sums failedCount over the resource's jobs in the last apply (a device in two of
	// them counts twice); Jobs are those jobs as the hub reports them now.
	Failed *Metric
	Jobs   []StatusJob
}

// StatusJob is one job of the last apply, as GET /jobs/v2/{id} reports it.
type StatusJob struct {
	JobID  string
	Type   string
	Status string
	// Devices and Failed are deviceJobStatistics' deviceCount and failedCount.
	Devices int
	Failed  int
	// Gone: the hub no longer has the job (it keeps job history for 30 days).
	Gone bool
}

// Status measures every resource of cfg (see above).
func Status(ctx context.Context, hub StatusHub, cfg *Config, opts StatusOptions) (*StatusReport, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.StateName == "" {
		opts.StateName = state.DefaultName
	}
	rep := &StatusReport{Hub: opts.Hub, StateName: opts.StateName, Observed: opts.Now.UTC()}
	since := meter(hub)
	defer func() { rep.HubCalls, rep.HubWait = since() }()
	if p := opts.Prior; p != nil {
		rep.LastApply = p.LastApply
		if a := p.Apply; a != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("an apply has not finished (id %s, %s since %s): failed devices are those of the last apply that finished",
				a.ID, a.Operation, TimeText(a.Started)))
		}
	}
	sr := &statusReader{q: hub, rows: map[string][]map[string]any{}}
	for _, t := range cfg.Twins {
		rs, err := sr.twin(ctx, t)
		if err != nil {
			return nil, err
		}
		rep.Resources = append(rep.Resources, *rs)
	}
	for _, m := range cfg.Methods {
		rs, err := sr.method(ctx, m, opts.StateName)
		if err != nil {
			return nil, err
		}
		rep.Resources = append(rep.Resources, *rs)
	}
	for i := range rep.Resources {
		if err := readLastJobs(ctx, hub, &rep.Resources[i], rep.LastApply); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// statusReader sends each statement once per Status.
type statusReader struct {
	q    Querier
	rows map[string][]map[string]any
}

func (sr *statusReader) query(ctx context.Context, addr, stmt string) ([]map[string]any, error) {
	if rows, ok := sr.rows[stmt]; ok {
		return rows, nil
	}
	rows, _, err := sr.q.QueryRows(ctx, stmt, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the status: %w", addr, err)
	}
	sr.rows[stmt] = rows
	return rows, nil
}

// count counts the devices where selects, or says why the hub cannot (a condition over the
// hub's length limit).
func (sr *statusReader) count(ctx context.Context, addr string, where query.Expr) (*Metric, error) {
	if query.CheckCondition(where) != nil {
		return &Metric{NA: "the condition is longer than the hub accepts"}, nil
	}
	rows, err := sr.query(ctx, addr, countStatement(where))
	if err != nil {
		return nil, err
	}
	n, err := countOf(rows, aliasCount)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the status: %w", addr, err)
	}
	return &Metric{Devices: n}, nil
}

// connections counts the targeted devices and the disconnected ones with one GROUP BY.
func (sr *statusReader) connections(ctx context.Context, addr string, target query.Expr) (targeted, disconnected int, err error) {
	p := query.P("connectionState")
	stmt := query.Select(query.Devices).Project(p, aliasValue).Count(aliasCount).Where(target).GroupBy(p).String()
	rows, err := sr.query(ctx, addr, stmt)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range rows {
		n, err := intField(r, aliasCount)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: reading the status: %w", addr, err)
		}
		targeted += n
		if r[aliasValue] == ConnectionDisconnected {
			disconnected += n
		}
	}
	return targeted, disconnected, nil
}

func (sr *statusReader) twin(ctx context.Context, t Twin) (*ResourceStatus, error) {
	pt, err := prepareTwin(t)
	if err != nil {
		return nil, err
	}
	target := scope(t.Target)
	rs := &ResourceStatus{Addr: t.Addr, Kind: KindTwin, Target: query.Format(normTarget(t.Target)), SensitiveTarget: t.TargetSensitive}
	if rs.Targeted, rs.Disconnected, err = sr.connections(ctx, t.Addr, target); err != nil {
		return nil, err
	}
	if rs.DesiredInSync, err = sr.inSync(ctx, t.Addr, target, pt.leaves, rs.Targeted, "manages no key"); err != nil {
		return nil, err
	}
	rs.ReportedInSync, err = sr.inSync(ctx, t.Addr, target, ReportedLeaves(pt.leaves), rs.Targeted, "manages no desired property (tags are not reported)")
	return rs, err
}

// inSync counts the targeted devices where every leaf holds its value; none is why a
// resource without leaves has no such metric.
func (sr *statusReader) inSync(ctx context.Context, addr string, target query.Expr, leaves []Leaf, targeted int, none string) (*Metric, error) {
	if len(leaves) == 0 {
		return &Metric{NA: none}, nil
	}
	cond, ok := convergedCondition(target, leaves)
	switch {
	case !ok:
		return &Metric{NA: "the hub cannot compare an array value"}, nil
	case targeted == 0:
		return &Metric{}, nil
	}
	return sr.count(ctx, addr, cond)
}

func (sr *statusReader) method(ctx context.Context, m Method, stateName string) (*ResourceStatus, error) {
	target := scope(m.Target)
	rs := &ResourceStatus{Addr: m.Addr, Kind: KindMethod, Target: query.Format(normTarget(m.Target)), SensitiveTarget: m.TargetSensitive, Method: m.Method}
	var err error
	if rs.Targeted, rs.Disconnected, err = sr.connections(ctx, m.Addr, target); err != nil || !m.TriggersSet {
		return rs, err
	}
	hash, err := triggersHash(m.Triggers)
	if err != nil {
		return nil, fmt.Errorf("%s: triggers: %w", m.Addr, err)
	}
	rs.RunTag = runTag(stateName, m.Addr)
	if rs.Targeted == 0 {
		rs.Ran = &Metric{}
		return rs, nil
	}
	rs.Ran, err = sr.count(ctx, m.Addr, ranCondition(target, rs.RunTag, hash))
	return rs, err
}

// ranCondition selects the targeted devices whose run record holds hash: they ran the method
// with the current triggers (a failed run is unmarked by apply, methods.go).
func ranCondition(target query.Expr, tag, hash string) query.Expr {
	return query.And(target, query.Eq(runPath(tag, "t"), hash))
}

// readLastJobs reads the resource's jobs of the last apply, one GET each, and sums their
// failed devices. A job the hub no longer has makes the count unknown.
func readLastJobs(ctx context.Context, hub StatusHub, rs *ResourceStatus, la *state.LastApply) error {
	jobs := la.JobsOf(rs.Addr)
	if len(jobs) == 0 {
		return nil
	}
	rs.Failed = &Metric{}
	for _, j := range jobs {
		got, err := hub.GetJob(ctx, j.JobID)
		if hubapi.StatusOf(err) == http.StatusNotFound {
			rs.Jobs = append(rs.Jobs, StatusJob{JobID: j.JobID, Type: j.Type, Gone: true})
			rs.Failed.NA = fmt.Sprintf("job %s is no longer on the hub (it keeps job history for 30 days)", j.JobID)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: reading job %s of the last apply: %w", rs.Addr, j.JobID, err)
		}
		sj := StatusJob{JobID: j.JobID, Type: j.Type, Status: got.Status}
		if st := got.DeviceJobStatistics; st != nil {
			sj.Devices, sj.Failed = st.DeviceCount, st.FailedCount
		}
		rs.Failed.Devices += sj.Failed
		rs.Jobs = append(rs.Jobs, sj)
	}
	return nil
}
