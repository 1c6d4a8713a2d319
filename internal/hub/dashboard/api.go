package dashboard

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/tier"
)

// Bounds of the API (see the package documentation, "Scale").
const (
	pageSize         = hubapi.MaxPageSize // rows of a query page, jobs of a jobs page
	maxGroupPages    = 10                 // pages of GROUP BY rows read: 1,000 distinct values
	maxGroupBars     = 30                 // groups shown; the rest are summed as "other"
	groupsTTL        = 5 * time.Second    // how long a grouping is reused
	maxGroupsCached  = 16                 // groupings remembered
	maxBodyBytes     = 64 << 10           // a request body (a query is at most 8192 characters)
	maxActivity      = 200                // events of one activity answer
	recent429Shown   = 20                 // recent refusals in a summary
	recentJobsWindow = 5 * time.Minute    // ended jobs stay in the live summary this long
	maxLiveJobs      = 50                 // jobs in one summary
)

// errorAnswer maps an error to its answer: apiErrors as they are, hub errors with their
// status and name, query errors with their position, anything else 500.
func errorAnswer(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var he *huberr.Error
	var qe *query.Error
	switch {
	case errors.As(err, &he):
		return &apiError{Status: he.Code.Status(), Code: he.Code.Name(), Message: he.Msg}
	case errors.As(err, &qe):
		// A path or statement the dashboard parsed itself, before asking the hub.
		return &apiError{Status: http.StatusBadRequest, Message: "The query is invalid: " + qe.Msg + "."}
	}
	return &apiError{Status: http.StatusInternalServerError, Message: err.Error()}
}

// queryFailure is a query's error with its position in text, when it has one.
func queryFailure(text string, err error) *apiError {
	e := errorAnswer(err)
	var qe *query.Error
	if errors.As(err, &qe) && qe.Pos.Line > 0 {
		off := min(max(qe.Pos.Offset, 0), len(text))
		e.Query = &queryErrPos{Line: qe.Pos.Line, Col: qe.Pos.Col, Reason: qe.Msg, Before: text[:off], After: text[off:]}
	}
	return e
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
}

// decode reads a JSON request body into v.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil || len(b) > maxBodyBytes {
		return badRequest("The request body is missing or larger than %d bytes.", maxBodyBytes)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return badRequest("The request body is not the JSON this call takes.")
	}
	return nil
}

// --- overview ----------------------------------------------------------------------------------

// summary is what the overview shows and the event stream sends every second.
type summary struct {
	Time         time.Time         `json:"time"`
	Devices      int               `json:"devices"`
	Connected    int               `json:"connected"`
	Disconnected int               `json:"disconnected"`
	Generation   uint64            `json:"generation"`
	Dialect      string            `json:"dialect"`
	Tier         string            `json:"tier"` // "" = unlimited
	Units        int               `json:"units"`
	Throttle     []classStats      `json:"throttle"`
	Refused      int               `json:"refusedTotal"`
	Recent429    []refusal         `json:"recent429"`
	JobCounts    map[string]int    `json:"jobCounts"`
	Activity     map[string]uint64 `json:"activityTotals"`
}

type classStats struct {
	Class   string  `json:"class"`
	Rate    float64 `json:"ratePerSecond"`
	Served  int64   `json:"served"`
	Queued  int64   `json:"queued"`
	Refused int64   `json:"refused"`
}

type refusal struct {
	At         time.Time `json:"at"`
	Class      string    `json:"class"`
	RetryAfter int       `json:"retryAfterSeconds"`
}

func (s *Server) summary() summary {
	n, c := s.opts.DeviceCount(), s.opts.ConnectedCount()
	sm := summary{
		Time: s.opts.Now().UTC(), Devices: n, Connected: c, Disconnected: max(n-c, 0),
		Generation: s.opts.Generation(), Dialect: s.opts.QueryDialect.String(),
		Tier: s.opts.Throttle.Tier(), Units: s.opts.Throttle.Units(),
		Throttle: []classStats{}, Recent429: []refusal{}, JobCounts: map[string]int{},
		Activity: s.opts.Activity.Totals(),
	}
	stats := s.opts.Throttle.Stats()
	for _, cl := range tier.Classes() {
		if st, ok := stats[cl]; ok {
			sm.Throttle = append(sm.Throttle, classStats{Class: string(cl), Rate: st.Rate, Served: st.Served, Queued: st.Queued, Refused: st.Refused})
		}
	}
	recent, total := s.opts.Throttle.Recent()
	sm.Refused = total
	for _, r := range recent[:min(len(recent), recent429Shown)] {
		sm.Recent429 = append(sm.Recent429, refusal{At: r.At.UTC(), Class: string(r.Class), RetryAfter: secondsUp(r.RetryAfter)})
	}
	for _, j := range s.opts.Jobs.List("", "") {
		sm.JobCounts[j.Status]++
	}
	return sm
}

func secondsUp(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func (s *Server) summaryAPI(_ *http.Request) (any, error) { return s.summary(), nil }

// groupsAnswer is the overview's bar chart: how many devices have each value of a property.
type groupsAnswer struct {
	By        string    `json:"by"`    // the property path, as the query language prints it
	Query     string    `json:"query"` // the statement that counted them
	Groups    []group   `json:"groups"`
	Other     int       `json:"other"` // devices in groups not shown (beyond maxGroupBars)
	OtherN    int       `json:"otherGroups"`
	Distinct  int       `json:"distinct"`  // groups read
	Truncated bool      `json:"truncated"` // more than maxGroupPages pages of groups: not all read
	Total     int       `json:"total"`     // devices in the groups read
	ElapsedMs int64     `json:"elapsedMs"`
	At        time.Time `json:"at"`
}

type group struct {
	// Value is the property's value as JSON text ("43" and 43 are different groups), or
	// "" for the devices where it is not defined.
	Value string `json:"value"`
	Count int    `json:"count"`
}

type groupsEntry struct {
	at  time.Time
	ans groupsAnswer
}

// groupsAPI counts the fleet's devices per value of ?by= (a property path, default
// tags.building) with one GROUP BY statement composed by the query builder: the user's text
// is parsed as a path and never pasted into a query.
func (s *Server) groupsAPI(r *http.Request) (any, error) {
	by := strings.TrimSpace(r.URL.Query().Get("by"))
	if by == "" {
		by = "tags.building"
	}
	p, err := query.ParsePath(by)
	if err != nil {
		return nil, queryFailure(by, err)
	}
	b := query.NewSelect().Project(p, "value").Count("n").GroupBy(p)
	if err := b.Check(); err != nil {
		return nil, queryFailure(by, err)
	}
	return s.groupsOf(p.String(), b.String())
}

// groupsOf runs a GROUP BY statement, reusing an answer younger than groupsTTL; one runs at
// a time, so many tabs on a large fleet cost one aggregation.
func (s *Server) groupsOf(by, text string) (groupsAnswer, error) {
	s.groupsMu.Lock()
	defer s.groupsMu.Unlock()
	now := s.opts.Now()
	if e, ok := s.groups[text]; ok && now.Sub(e.at) < groupsTTL {
		return e.ans, nil
	}
	start := time.Now()
	ans := groupsAnswer{By: by, Query: text, Groups: []group{}, At: now.UTC()}
	var all []group
	cont := ""
	for page := 0; ; page++ {
		if page == maxGroupPages {
			ans.Truncated = true
			break
		}
		res, err := s.opts.Queries.Query(text, cont, pageSize)
		if err != nil {
			return groupsAnswer{}, queryFailure(text, err)
		}
		for _, row := range res.Items {
			g, err := groupRow(row)
			if err != nil {
				return groupsAnswer{}, err
			}
			all = append(all, g)
			ans.Total += g.Count
		}
		if cont = res.Continuation; cont == "" {
			break
		}
	}
	ans.Distinct = len(all)
	slices.SortStableFunc(all, func(a, b group) int { return cmp.Compare(b.Count, a.Count) })
	if len(all) > maxGroupBars {
		for _, g := range all[maxGroupBars:] {
			ans.Other += g.Count
		}
		ans.OtherN = len(all) - maxGroupBars
		all = all[:maxGroupBars]
	}
	ans.Groups = append(ans.Groups, all...)
	ans.ElapsedMs = time.Since(start).Milliseconds()
	if len(s.groups) >= maxGroupsCached {
		clear(s.groups)
	}
	s.groups[text] = groupsEntry{at: now, ans: ans}
	return ans, nil
}

// groupRow reads one GROUP BY row ({"value": v, "n": count}; no "value" for the devices
// where the property is undefined) through its JSON form, whatever Go type the query
// engine uses for rows.
func groupRow(row any) (group, error) {
	b, err := json.Marshal(row)
	if err != nil {
		return group{}, err
	}
	var r struct {
		Value json.RawMessage `json:"value"`
		N     float64         `json:"n"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return group{}, err
	}
	return group{Value: string(r.Value), Count: int(r.N)}, nil
}

// --- devices -----------------------------------------------------------------------------------

type queryRequest struct {
	Query        string `json:"query"`
	Continuation string `json:"continuation"`
}

type queryAnswer struct {
	Items        []any  `json:"items"`
	ItemType     string `json:"itemType"`
	Continuation string `json:"continuation,omitempty"`
	ElapsedMs    int64  `json:"elapsedMs"`
}

// queryAPI runs the devices page's query, one page of 100 at a time, through the hub's own
// query path.
func (s *Server) queryAPI(r *http.Request) (any, error) {
	var req queryRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	start := time.Now()
	res, err := s.opts.Queries.Query(req.Query, req.Continuation, pageSize)
	if err != nil {
		return nil, queryFailure(req.Query, err)
	}
	if res.Items == nil {
		res.Items = []any{}
	}
	return queryAnswer{Items: res.Items, ItemType: res.ItemType, Continuation: res.Continuation,
		ElapsedMs: time.Since(start).Milliseconds()}, nil
}

func (s *Server) twinAPI(r *http.Request) (any, error) {
	id := r.URL.Query().Get("id")
	if id == "" {
		return nil, badRequest("Which device? Pass ?id=.")
	}
	return s.opts.Twin(id)
}

// --- jobs --------------------------------------------------------------------------------------

// jobSummary is a job as the jobs page lists it: no update patch or method payload, which
// can be large.
type jobSummary struct {
	JobID          string                      `json:"jobId"`
	Type           string                      `json:"type"`
	Status         string                      `json:"status"`
	QueryCondition string                      `json:"queryCondition,omitempty"`
	Method         string                      `json:"method,omitempty"`
	CreatedTime    *time.Time                  `json:"createdTime,omitempty"`
	StartTime      *time.Time                  `json:"startTime,omitempty"`
	EndTime        *time.Time                  `json:"endTime,omitempty"`
	FailureReason  string                      `json:"failureReason,omitempty"`
	StatusMessage  string                      `json:"statusMessage,omitempty"`
	Stats          *hubapi.DeviceJobStatistics `json:"stats,omitempty"`
	Ended          bool                        `json:"ended"`
}

func summarizeJob(j hubapi.JobResponse) jobSummary {
	js := jobSummary{JobID: j.JobID, Type: j.Type, Status: j.Status, QueryCondition: j.QueryCondition,
		CreatedTime: j.CreatedTime, StartTime: j.StartTime, EndTime: j.EndTime, FailureReason: j.FailureReason,
		StatusMessage: j.StatusMessage, Stats: j.DeviceJobStatistics, Ended: hubapi.JobEnded(j.Status)}
	if j.CloudToDeviceMethod != nil {
		js.Method = j.CloudToDeviceMethod.MethodName
	}
	return js
}

type jobsAnswer struct {
	Jobs  []jobSummary `json:"jobs"`
	Total int          `json:"total"`
	Next  int          `json:"next,omitempty"` // ?offset= of the next page; 0 = none
}

// jobsAPI lists the hub's jobs, newest first, a page of 100 from ?offset=.
func (s *Server) jobsAPI(r *http.Request) (any, error) {
	off := 0
	if o := r.URL.Query().Get("offset"); o != "" {
		n, err := strconv.Atoi(o)
		if err != nil || n < 0 {
			return nil, badRequest("offset must be a number of jobs.")
		}
		off = n
	}
	list := s.opts.Jobs.List("", "")
	ans := jobsAnswer{Jobs: []jobSummary{}, Total: len(list)}
	end := min(off+pageSize, len(list))
	for i := off; i < end; i++ {
		ans.Jobs = append(ans.Jobs, summarizeJob(list[i]))
	}
	if end < len(list) {
		ans.Next = end
	}
	return ans, nil
}

// liveJobs are the jobs the event stream reports: not ended, or ended within
// recentJobsWindow, newest first, at most maxLiveJobs.
func (s *Server) liveJobs() []jobSummary {
	out := []jobSummary{}
	cutoff := s.opts.Now().Add(-recentJobsWindow)
	for _, j := range s.opts.Jobs.List("", "") {
		if len(out) == maxLiveJobs {
			break
		}
		if !hubapi.JobEnded(j.Status) || j.EndTime == nil || j.EndTime.After(cutoff) {
			out = append(out, summarizeJob(j))
		}
	}
	return out
}

func (s *Server) jobAPI(r *http.Request) (any, error) {
	j, err := s.opts.Jobs.Get(r.URL.Query().Get("id"))
	if err != nil {
		return nil, err
	}
	return j, nil
}

// jobDevicesAPI pages a job's devices.jobs rows: ?failed=1 the failed ones, else the others
// — the page asks for the failed ones first. The statement is composed by the query builder
// (the job id is a literal the printer quotes).
func (s *Server) jobDevicesAPI(r *http.Request) (any, error) {
	q := r.URL.Query()
	id := q.Get("id")
	if id == "" {
		return nil, badRequest("Which job? Pass ?id=.")
	}
	status := query.P("devices", "jobs", "status")
	failed := query.Eq(status, hubapi.DeviceJobFailed)
	if q.Get("failed") != "1" {
		failed = query.Ne(status, hubapi.DeviceJobFailed)
	}
	b := query.Select(query.Jobs).Where(query.And(query.Eq(query.P("devices", "jobs", "jobId"), id), failed))
	if err := b.Check(); err != nil {
		return nil, badRequest("That job id cannot be queried: %s", err)
	}
	text := b.String()
	res, err := s.opts.Queries.Query(text, q.Get("continuation"), pageSize)
	if err != nil {
		return nil, queryFailure(text, err)
	}
	if res.Items == nil {
		res.Items = []any{}
	}
	return queryAnswer{Items: res.Items, ItemType: res.ItemType, Continuation: res.Continuation}, nil
}

func (s *Server) cancelJobAPI(r *http.Request) (any, error) {
	var req struct {
		ID string `json:"id"`
	}
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	j, err := s.opts.Jobs.Cancel(req.ID)
	if err != nil {
		return nil, err
	}
	return summarizeJob(j), nil
}

// --- activity ----------------------------------------------------------------------------------

type activityAnswer struct {
	Events  []Event `json:"events"`
	Skipped uint64  `json:"skipped"`
	Last    uint64  `json:"last"`
}

// activityAPI returns the events after ?after= (default: the newest maxActivity).
func (s *Server) activityAPI(r *http.Request) (any, error) {
	var after uint64
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			return nil, badRequest("after must be an event number.")
		}
		after = n
	}
	ev, skipped, last := s.opts.Activity.Since(after, maxActivity)
	if ev == nil {
		ev = []Event{}
	}
	return activityAnswer{Events: ev, Skipped: skipped, Last: last}, nil
}
