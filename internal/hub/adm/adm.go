// Package adm is the local hub's automatic device management (ADM) configurations: the hub's
// own declarative feature (https://learn.microsoft.com/azure/iot-hub/iot-hub-automatic-device-management). A configuration has a target condition (a query
// condition on twins), a priority and content — desired-property paths
// ("properties.desired.a.b") with values — and the hub keeps every targeted twin's desired
// properties at those values, highest priority winning per path (ties: the most recently
// created configuration). Twins expose configurations.[[id]].status ("Applied" when the
// configuration set at least one of its paths on the twin, "Targeted" when it targets the twin
// but higher-priority configurations own all its paths), system metrics count targetedCount and
// appliedCount, and up to 5 custom metric queries count the rows they return.
//
// Evaluation is a background loop: a pass runs at once after a configuration is created,
// changed or deleted, and every Options.Period (default 5 s) when the registry changed
// (registry.Generation) — Azure applies configurations asynchronously too, at an undocumented
// cadence (minutes in practice) [unverified]. A pass writes desired properties with ordinary
// twin updates (If-Match "*"), so versions move and connected devices are notified exactly as
// for a REST PATCH. When a path stops being owned by any configuration (the twin no longer
// matches, or the configuration was deleted), the hub removes the property it had set (a null
// in the patch) — "this configuration's settings are removed and the next-priority config
// applies" (https://learn.microsoft.com/azure/iot-hub/iot-hub-automatic-device-management); which paths a configuration set on which twin is remembered in the bucket
// "admapplied", so a restart does not forget what to remove.
//
// Store: bucket "configurations" (id → Configuration JSON) and "admapplied" (deviceId → {path:
// configId}). Not supported: modulesContent/moduleContent (edge deployments and module
// configurations are rejected with 400402), labels-based layering, applyConfigurationContent.
//
// Queries: target conditions and custom metric queries are parsed in Options.QueryDialect, by
// default the documented query language (internal/query), and reported to Options.OnQuery.
//
// Imports: huberr, hubapi, query, bbolt, stdlib. The twins are reached through the Twins
// interface (satisfied by *registry.Registry), so this package does not import the registry.
package adm

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Error codes of configurations (https://learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes).
const (
	InvalidConfigurationTargetCondition       = huberr.InvalidConfigurationTargetCondition
	InvalidConfigurationContent               = huberr.InvalidConfigurationContent
	CannotModifyImmutableConfigurationContent = huberr.CannotModifyImmutableConfigurationContent
	InvalidConfigurationCustomMetricsQuery    = huberr.InvalidConfigurationCustomMetricsQuery
	ConfigurationNotFound                     = huberr.ConfigurationNotFound
	ConfigurationAlreadyExists                = huberr.ConfigurationAlreadyExists
	ConfigurationCountLimitExceeded           = huberr.ConfigurationCountLimitExceeded
)

// Limits.
const (
	MaxConfigurations = 100 // per paid hub (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling)
	MaxCustomMetrics  = 5
	MaxIDLength       = 128
	DefaultPeriod     = 5 * time.Second
	desiredPrefix     = "properties.desired."
)

// Statuses in twins' configurations member.
const (
	StatusApplied  = "Applied"
	StatusTargeted = "Targeted"
)

// Configuration, Content and Metrics are the wire shapes of GET/PUT /configurations/{id},
// shared with iotplan's client (internal/hubapi).
type (
	Configuration = hubapi.Configuration
	Content       = hubapi.ConfigurationContent
	Metrics       = hubapi.ConfigurationMetrics
)

// TestQueriesInput is the body of POST /configurations/testQueries.
type TestQueriesInput struct {
	TargetCondition     string            `json:"targetCondition"`
	CustomMetricQueries map[string]string `json:"customMetricQueries"`
}

// TestQueriesResult is its answer.
type TestQueriesResult struct {
	TargetConditionError    string            `json:"targetConditionError"`
	CustomMetricQueryErrors map[string]string `json:"customMetricQueryErrors"`
}

// Twins is what ADM needs from the registry; *registry.Registry satisfies it.
type Twins interface {
	ForEachTwin(fn func(doc any) bool)
	UpdateTwin(deviceID string, patch hubapi.TwinPatch, ifMatch string) (map[string]any, error)
	SetTwinConfigurations(deviceID string, cfg map[string]any) error
	Generation() uint64
}

// Options configure a Manager.
type Options struct {
	Now    func() time.Time // nil = time.Now
	Period time.Duration    // evaluation period; 0 = DefaultPeriod
	// Manual turns the background loop off: passes run only when the caller calls Evaluate
	// (deterministic unit tests).
	Manual bool
	Logger *slog.Logger
	// QueryDialect is the query language of target conditions and metric queries
	// (query.Documented, the zero value, or query.Extended). Configurations already stored
	// were accepted when they were written and are loaded whatever the dialect (a warning is
	// logged for those it would reject).
	QueryDialect query.Dialect
	// OnQuery, if set, is called with every target condition and metric query that PUT
	// /configurations/{id} and POST /configurations/testQueries receive, and the error each
	// was rejected with (nil when accepted).
	OnQuery func(text string, err error)
}

var (
	bucketConfigs = []byte("configurations")
	bucketApplied = []byte("admapplied")
)

// compiled is a configuration with its parsed parts.
type compiled struct {
	cfg     Configuration
	seq     int64            // creation order, for priority ties
	target  *query.Condition // the target condition, compiled ("*" matches every twin, "" none)
	expr    query.Expr       // the target condition's tree, for the systemMetrics query texts
	paths   []contentPath
	metrics map[string]*query.Program
}

type contentPath struct {
	key   string   // "a.b" (without properties.desired.)
	parts []string // ["a","b"]
	value any
}

// Manager owns the configurations of one hub.
type Manager struct {
	db    *bbolt.DB
	twins Twins
	opts  Options
	log   *slog.Logger

	mu      sync.Mutex
	configs map[string]*compiled
	etagN   map[string]int64
	seq     int64
	applied map[string]map[string]string // deviceId → path → configId
	dirty   bool                         // configurations changed since the last pass
	// statuses: the last pass may have left configuration statuses on twins (so a pass
	// after the last configuration is deleted must still run to clear them).
	statuses bool
	lastGen  uint64

	passMu sync.Mutex // one evaluation pass at a time
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// New opens the configurations store and starts the evaluator.
func New(db *bbolt.DB, twins Twins, opts Options) (*Manager, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Period <= 0 {
		opts.Period = DefaultPeriod
	}
	m := &Manager{db: db, twins: twins, opts: opts, log: opts.Logger, configs: map[string]*compiled{}, etagN: map[string]int64{},
		applied: map[string]map[string]string{}, dirty: true, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	err := db.Update(func(tx *bbolt.Tx) error {
		cb, err := tx.CreateBucketIfNotExists(bucketConfigs)
		if err != nil {
			return err
		}
		ab, err := tx.CreateBucketIfNotExists(bucketApplied)
		if err != nil {
			return err
		}
		if err := cb.ForEach(func(k, v []byte) error {
			var rec record
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("configuration %q: %w", k, err)
			}
			c, herr := compile(rec.Config, query.Extended, nil)
			if herr != nil {
				return fmt.Errorf("configuration %q: %w", k, herr)
			}
			if opts.QueryDialect != query.Extended {
				if derr := checkQueries(rec.Config, opts.QueryDialect); derr != nil {
					m.log.Warn("adm: a stored configuration is not in the hub's query dialect; it keeps running",
						"configuration", rec.Config.ID, "dialect", opts.QueryDialect, "err", derr)
				}
			}
			c.seq = rec.Seq
			m.configs[rec.Config.ID] = c
			m.etagN[rec.Config.ID] = rec.ETagN
			m.seq = max(m.seq, rec.Seq)
			return nil
		}); err != nil {
			return err
		}
		return ab.ForEach(func(k, v []byte) error {
			var a map[string]string
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("applied %q: %w", k, err)
			}
			m.applied[string(k)] = a
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("adm: open store: %w", err)
	}
	if opts.Manual {
		close(m.done)
	} else {
		go m.loop()
	}
	return m, nil
}

// record is what the configurations bucket holds.
type record struct {
	Config Configuration `json:"config"`
	Seq    int64         `json:"seq"`
	ETagN  int64         `json:"etagN"`
}

// Close stops the evaluator (waiting for a pass in progress).
func (m *Manager) Close() error {
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	<-m.done
	return nil
}

func (m *Manager) loop() {
	defer close(m.done)
	t := time.NewTicker(m.opts.Period)
	defer t.Stop()
	for {
		m.Evaluate()
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-m.kick:
		}
	}
}

func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// etagOf is base64 of the decimal counter, like the hub's "MQ==" for 1.
func etagOf(n int64) string {
	return base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(n, 10)))
}

func (m *Manager) now() string { return m.opts.Now().UTC().Format("2006-01-02T15:04:05.0000000Z") }

// --- validation --------------------------------------------------------------------------------

func validateID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return huberr.New(huberr.ArgumentInvalid, "The configuration id must be 1 to %d characters long.", MaxIDLength)
	}
	for _, r := range id {
		if r >= 'A' && r <= 'Z' || r <= ' ' || r > '~' || strings.ContainsRune(`&^[]{}\|"<>/`, r) {
			return huberr.New(huberr.ArgumentInvalid, "The configuration id %q is not valid: lowercase ASCII letters, digits and - : + %% _ # * ? ! ( ) , = @ ; $ ' only.", id)
		}
	}
	return nil
}

// onQuery reports a received query text to the OnQuery hook, if any.
type onQuery func(text string, err error)

func (f onQuery) report(text string, err error) {
	if f != nil {
		f(text, err)
	}
}

// parseTarget parses and compiles a target condition in dialect d: "" (or blanks) targets no
// twin (expr is the constant false), anything else is a condition, "*" every twin.
func parseTarget(src string, d query.Dialect, report onQuery) (expr query.Expr, cond *query.Condition, err error) {
	defer func() { report.report(src, err) }()
	if s := strings.TrimSpace(src); s == "" {
		expr = query.Or()
	} else {
		expr, err = query.ParseConditionDialect(s, d)
	}
	if err == nil {
		cond, err = query.CompileCondition(expr)
	}
	if err != nil {
		he := huberr.New(InvalidConfigurationTargetCondition, "The target condition is invalid: %s.", err.Error())
		he.Cause = err
		return nil, nil, he
	}
	return expr, cond, nil
}

func parseMetric(name, src string, d query.Dialect, report onQuery) (_ *query.Program, err error) {
	defer func() { report.report(src, err) }()
	q, err := query.ParseDialect(src, d)
	var p *query.Program
	if err == nil {
		p, err = query.Compile(q)
	}
	if err == nil && p.Source() != query.Devices {
		err = errors.New("metric queries must select FROM devices")
	}
	if err != nil {
		he := huberr.New(InvalidConfigurationCustomMetricsQuery, "The custom metric query %q is invalid: %s.", name, err.Error())
		he.Cause = err
		return nil, he
	}
	return p, nil
}

// checkQueries parses a configuration's target condition and custom metric queries (in name
// order) in dialect d, and returns the first error.
func checkQueries(c Configuration, d query.Dialect) error {
	if _, _, err := parseTarget(c.TargetCondition, d, nil); err != nil {
		return err
	}
	if c.Metrics != nil {
		for _, name := range slices.Sorted(maps.Keys(c.Metrics.Queries)) {
			if _, err := parseMetric(name, c.Metrics.Queries[name], d, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// compile validates a configuration body and parses its parts in dialect d, reporting each
// query text to report.
func compile(c Configuration, d query.Dialect, report onQuery) (*compiled, error) {
	if err := validateID(c.ID); err != nil {
		return nil, err
	}
	if c.Priority < 0 {
		return nil, huberr.New(huberr.ArgumentInvalid, "The priority must be a non-negative integer.")
	}
	out := &compiled{cfg: c, metrics: map[string]*query.Program{}}
	var err error
	if out.expr, out.target, err = parseTarget(c.TargetCondition, d, report); err != nil {
		return nil, err
	}
	if c.Content == nil || len(c.Content.DeviceContent) == 0 {
		if c.Content != nil && (len(c.Content.ModulesContent) > 0 || len(c.Content.ModuleContent) > 0) {
			return nil, huberr.New(InvalidConfigurationContent, "modulesContent and moduleContent (IoT Edge deployments, module configurations) are not supported by the local hub.")
		}
		return nil, huberr.New(InvalidConfigurationContent, "The configuration has no content.deviceContent.")
	}
	if len(c.Content.ModulesContent) > 0 || len(c.Content.ModuleContent) > 0 {
		return nil, huberr.New(InvalidConfigurationContent, "A configuration carries either deviceContent or modulesContent, and the local hub supports only deviceContent.")
	}
	for k, v := range c.Content.DeviceContent {
		if !strings.HasPrefix(k, desiredPrefix) || len(k) == len(desiredPrefix) {
			return nil, huberr.New(InvalidConfigurationContent, "deviceContent path %q must start with %q and name a property.", k, desiredPrefix)
		}
		parts := strings.Split(k[len(desiredPrefix):], ".")
		for _, p := range parts {
			if p == "" || strings.ContainsAny(p, "$ ") {
				return nil, huberr.New(InvalidConfigurationContent, "deviceContent path %q has an invalid property name.", k)
			}
		}
		out.paths = append(out.paths, contentPath{key: strings.Join(parts, "."), parts: parts, value: v})
	}
	// A path may not contain another (a.b and a.b.c): their values would fight.
	slices.SortFunc(out.paths, func(a, b contentPath) int { return cmp.Compare(a.key, b.key) })
	for i := 1; i < len(out.paths); i++ {
		if strings.HasPrefix(out.paths[i].key, out.paths[i-1].key+".") {
			return nil, huberr.New(InvalidConfigurationContent, "deviceContent paths %q and %q overlap.", out.paths[i-1].key, out.paths[i].key)
		}
	}
	if c.Metrics != nil {
		if len(c.Metrics.Queries) > MaxCustomMetrics {
			return nil, huberr.New(InvalidConfigurationCustomMetricsQuery, "A configuration may have at most %d custom metrics.", MaxCustomMetrics)
		}
		for name, src := range c.Metrics.Queries {
			p, err := parseMetric(name, src, d, report)
			if err != nil {
				return nil, err
			}
			out.metrics[name] = p
		}
	}
	return out, nil
}

// --- CRUD --------------------------------------------------------------------------------------

func notFound(id string) error {
	return huberr.New(ConfigurationNotFound, "Configuration %s not found.", id)
}

func parseIfMatch(h string) string {
	h = strings.TrimPrefix(strings.TrimSpace(h), "W/")
	if len(h) >= 2 && h[0] == '"' && h[len(h)-1] == '"' {
		h = h[1 : len(h)-1]
	}
	if h == "*" {
		return ""
	}
	return h
}

// Put is PUT /configurations/{id}: without If-Match it creates (409401 if it exists, 413101
// beyond MaxConfigurations); with If-Match it updates (404301 if missing, 412001 on an etag
// mismatch, 400403 if content changes — only targetCondition, priority, labels and metrics may).
func (m *Manager) Put(c Configuration, ifMatch string) (Configuration, error) {
	comp, err := compile(c, m.opts.QueryDialect, m.opts.OnQuery)
	if err != nil {
		return Configuration{}, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.configs[c.ID]
	if strings.TrimSpace(ifMatch) == "" {
		if old != nil {
			return Configuration{}, huberr.New(ConfigurationAlreadyExists, "Configuration %s already exists.", c.ID)
		}
		if len(m.configs) >= MaxConfigurations {
			return Configuration{}, huberr.New(ConfigurationCountLimitExceeded, "The hub already has the maximum of %d configurations.", MaxConfigurations)
		}
		m.seq++
		comp.seq = m.seq
		comp.cfg.CreatedTimeUTC = now
		m.etagN[c.ID] = 0
	} else {
		if old == nil {
			return Configuration{}, notFound(c.ID)
		}
		if want := parseIfMatch(ifMatch); want != "" && want != old.cfg.ETag {
			return Configuration{}, huberr.New(huberr.PreconditionFailed, "Precondition failed: the etag in If-Match does not match the configuration's etag.")
		}
		if !sameContent(old.cfg.Content, c.Content) {
			return Configuration{}, huberr.New(CannotModifyImmutableConfigurationContent, "The content of configuration %s cannot be modified; create a new configuration.", c.ID)
		}
		comp.seq = old.seq
		comp.cfg.CreatedTimeUTC = old.cfg.CreatedTimeUTC
		comp.cfg.SystemMetrics = old.cfg.SystemMetrics
	}
	m.etagN[c.ID]++
	comp.cfg.ETag = etagOf(m.etagN[c.ID])
	comp.cfg.LastUpdatedTimeUTC = now
	if comp.cfg.SchemaVersion == "" {
		comp.cfg.SchemaVersion = "1.0"
	}
	comp.cfg.SystemMetrics = systemMetrics(comp, comp.cfg.SystemMetrics)
	comp.cfg.Metrics = customMetrics(comp, comp.cfg.Metrics, old)
	if err := m.persist(comp); err != nil {
		return Configuration{}, err
	}
	m.configs[c.ID] = comp
	m.dirty = true
	m.wake()
	return copyConfig(comp.cfg), nil
}

func sameContent(a, b *Content) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// systemMetrics are the two system metrics with the queries that count them, written by the
// query printer, never by joining strings: the target's canonical text, and the configuration's
// status as configurations.<id>.status (with [[id]] where the id needs brackets).
func systemMetrics(c *compiled, prev *Metrics) *Metrics {
	ids := func() *query.SelectBuilder { return query.Select(query.Devices).Project(query.P("deviceId"), "") }
	applied := query.Eq(query.P("configurations", c.cfg.ID, "status"), StatusApplied)
	sm := &Metrics{
		Queries: map[string]string{
			"targetedCount": ids().Where(c.expr).String(),
			"appliedCount":  ids().Where(applied).String(),
		},
		Results: map[string]int64{"targetedCount": 0, "appliedCount": 0},
	}
	if prev != nil && prev.Results != nil {
		sm.Results["targetedCount"] = prev.Results["targetedCount"]
		sm.Results["appliedCount"] = prev.Results["appliedCount"]
	}
	return sm
}

func customMetrics(c *compiled, in *Metrics, old *compiled) *Metrics {
	out := &Metrics{Queries: map[string]string{}, Results: map[string]int64{}}
	if in != nil {
		for k, v := range in.Queries {
			out.Queries[k] = v
			out.Results[k] = 0
			if old != nil && old.cfg.Metrics != nil && old.cfg.Metrics.Queries[k] == v {
				out.Results[k] = old.cfg.Metrics.Results[k]
			}
		}
	}
	return out
}

func (m *Manager) persist(c *compiled) error {
	b, err := json.Marshal(record{Config: c.cfg, Seq: c.seq, ETagN: m.etagN[c.cfg.ID]})
	if err != nil {
		return err
	}
	if err := m.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketConfigs).Put([]byte(c.cfg.ID), b) }); err != nil {
		return huberr.New(huberr.ServerError, "The hub could not write its store: %s", err.Error())
	}
	return nil
}

func copyConfig(c Configuration) Configuration {
	b, _ := json.Marshal(c)
	var out Configuration
	_ = json.Unmarshal(b, &out)
	return out
}

// Get returns a configuration (404301 if unknown).
func (m *Manager) Get(id string) (Configuration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.configs[id]
	if c == nil {
		return Configuration{}, notFound(id)
	}
	return copyConfig(c.cfg), nil
}

// List returns up to top configurations (top ≤ 0: all), by id.
func (m *Manager) List(top int) []Configuration {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range m.configs {
			if !yield(id) {
				return
			}
		}
	})
	if top > 0 && top < len(ids) {
		ids = ids[:top]
	}
	out := make([]Configuration, 0, len(ids))
	for _, id := range ids {
		out = append(out, copyConfig(m.configs[id].cfg))
	}
	return out
}

// Delete removes a configuration (If-Match as for updates); its settings are removed from the
// twins it had set them on, or taken over by the next configuration, at the next pass.
func (m *Manager) Delete(id, ifMatch string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.configs[id]
	if c == nil {
		return notFound(id)
	}
	if want := parseIfMatch(ifMatch); want != "" && want != c.cfg.ETag {
		return huberr.New(huberr.PreconditionFailed, "Precondition failed: the etag in If-Match does not match the configuration's etag.")
	}
	if err := m.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketConfigs).Delete([]byte(id)) }); err != nil {
		return huberr.New(huberr.ServerError, "The hub could not write its store: %s", err.Error())
	}
	delete(m.configs, id)
	m.dirty = true
	m.wake()
	return nil
}

// TestQueries checks a target condition and custom metric queries without saving anything.
func (m *Manager) TestQueries(in TestQueriesInput) TestQueriesResult {
	res := TestQueriesResult{CustomMetricQueryErrors: map[string]string{}}
	if _, _, err := parseTarget(in.TargetCondition, m.opts.QueryDialect, m.opts.OnQuery); err != nil {
		res.TargetConditionError = huberr.As(err).Msg
	}
	for name, q := range in.CustomMetricQueries {
		if _, err := parseMetric(name, q, m.opts.QueryDialect, m.opts.OnQuery); err != nil {
			res.CustomMetricQueryErrors[name] = huberr.As(err).Msg
		}
	}
	return res
}
