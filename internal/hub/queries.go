package hub

// QuerySource says where the hub received a query text.
type QuerySource string

// The query texts the hub receives.
const (
	// QueryFromQuery is the statement of a POST /devices/query request (every page request).
	QueryFromQuery QuerySource = "query"
	// QueryFromJob is a job's queryCondition, evaluated when the job starts running.
	QueryFromJob QuerySource = "job"
	// QueryFromADM is a configuration's target condition or custom metric query, received by
	// PUT /configurations/{id} or POST /configurations/testQueries.
	QueryFromADM QuerySource = "adm"
)

// QueryEvent is one query text the hub received (Options.OnQuery).
type QueryEvent struct {
	Source QuerySource
	Text   string
	// Err is why the hub rejected the text (an HTTP 400, a failed job, a configuration
	// error), nil when it accepted it. errors.Is(Err, query.ErrUndocumented) when only the
	// Extended dialect has the construct; errors.As finds the positioned *query.Error.
	Err error
}

// queryHook is the callback the hub's parts report texts from source to: it logs each at
// debug level and passes it to Options.OnQuery.
func (h *Hub) queryHook(source QuerySource) func(text string, err error) {
	return func(text string, err error) {
		if err != nil {
			h.log.Debug("hub: query rejected", "source", string(source), "query", text, "dialect", h.opts.QueryDialect.String(), "err", err)
		} else {
			h.log.Debug("hub: query", "source", string(source), "query", text)
		}
		if h.opts.OnQuery != nil {
			h.opts.OnQuery(QueryEvent{Source: source, Text: text, Err: err})
		}
	}
}
