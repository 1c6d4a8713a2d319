package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/query"
)

// Limits.
const (
	maxBodyBytes       = 4 << 20 // any request body
	maxMethodPayload   = 128 << 10
	maxListDevices     = 1000
	minResponseTimeout = 5
	maxResponseTimeout = 300
	maxConnectTimeout  = 300
)

// decodeBody reads a JSON body into v. An empty body is ArgumentNull; unparseable JSON is
// IotHubFormatError (400006).
// More values (also) decode the same body, for what v's type cannot tell (an explicit 0).
func decodeBody(r *http.Request, v any, more ...any) error {
	return decodeBodyOpt(r, v, false, more...)
}

// decodeTwinBody decodes a body carrying twin sections keeping number literals
// (json.Number), so that the registry checks the hub's integer range exactly.
func decodeTwinBody(r *http.Request, v any) error { return decodeBodyOpt(r, v, true) }

func decodeBodyOpt(r *http.Request, v any, numbers bool, more ...any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return huberr.New(huberr.GenericBadRequest, "The request body could not be read.")
	}
	if len(b) > maxBodyBytes {
		return huberr.New(huberr.MessageTooLarge, "The request body is larger than %d bytes.", maxBodyBytes)
	}
	switch trimmed := bytes.TrimSpace(b); {
	case len(trimmed) == 0:
		return huberr.New(huberr.ArgumentNull, "The request body is empty.")
	case bytes.Equal(trimmed, []byte("null")):
		// JSON null decodes to nothing: an operation without its body [strict where the
		// hub's docs are silent, docs/hub-api.md].
		return huberr.New(huberr.ArgumentNull, "The request body is null.")
	case !utf8.Valid(b):
		// JSON text is UTF-8 (RFC 8259 §8.1); Go would silently replace bad bytes with U+FFFD.
		return huberr.New(huberr.IotHubFormatError, "The request body is not valid UTF-8.")
	}
	var err2 error
	if numbers {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		err2 = dec.Decode(v)
		if err2 == nil && len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
			err2 = errors.New("invalid character after top-level value")
		}
	} else {
		err2 = json.Unmarshal(b, v)
		for _, m := range more {
			if err2 == nil {
				err2 = json.Unmarshal(b, m)
			}
		}
	}
	if err2 != nil {
		return huberr.New(huberr.IotHubFormatError, "The request body is not valid JSON for this operation: %s.", strings.TrimPrefix(err2.Error(), "json: "))
	}
	return nil
}

// --- devices -----------------------------------------------------------------------------------

func (s *Server) listDevices(_ http.ResponseWriter, r *http.Request) (any, error) {
	top := maxListDevices
	if t := r.URL.Query().Get("top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return nil, huberr.New(huberr.ArgumentInvalid, "top must be a positive number.")
		}
		top = min(n, maxListDevices)
	}
	return s.opts.Registry.ListDevices(top), nil
}

func (s *Server) getDevice(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.opts.Registry.GetDevice(r.PathValue("id"))
}

func (s *Server) putDevice(_ http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	var d registry.Device
	if err := decodeBody(r, &d); err != nil {
		return nil, err
	}
	if d.DeviceID == "" {
		d.DeviceID = id
	}
	if d.DeviceID != id {
		return nil, huberr.New(huberr.ArgumentInvalid, "The deviceId in the body (%s) does not match the one in the path (%s).", d.DeviceID, id)
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Registry.CreateOrUpdateDevice(d, im)
}

func (s *Server) deleteDevice(_ http.ResponseWriter, r *http.Request) (any, error) {
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return nil, s.opts.Registry.DeleteDevice(r.PathValue("id"), im)
}

// --- twins -------------------------------------------------------------------------------------

func (s *Server) getTwin(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.opts.Registry.GetTwin(r.PathValue("id"))
}

func (s *Server) patchTwin(_ http.ResponseWriter, r *http.Request) (any, error) {
	var p hubapi.TwinPatch
	if err := decodeTwinBody(r, &p); err != nil {
		return nil, err
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Registry.UpdateTwin(r.PathValue("id"), p, im)
}

func (s *Server) putTwin(_ http.ResponseWriter, r *http.Request) (any, error) {
	var p hubapi.TwinPatch
	if err := decodeTwinBody(r, &p); err != nil {
		return nil, err
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Registry.ReplaceTwin(r.PathValue("id"), p, im)
}

// --- direct methods ----------------------------------------------------------------------------

// methodBody distinguishes an absent timeout (default) from an explicit 0 (rejected).
type methodBody struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
}

// parseMethod reads and validates a direct-method body (the hub's limits: response timeout
// 5–300 s, connect timeout 0–300 s, payload ≤ 128 KB), with errors in the JSON-in-Message
// envelope as the hub sends them for methods.
func parseMethod(r *http.Request) (hubapi.CloudToDeviceMethod, error) {
	var b methodBody
	if err := decodeBody(r, &b); err != nil {
		return hubapi.CloudToDeviceMethod{}, err
	}
	m := hubapi.CloudToDeviceMethod{MethodName: b.MethodName, Payload: b.Payload, ResponseTimeoutInSeconds: 30}
	if strings.TrimSpace(b.MethodName) == "" {
		return m, huberr.NewJSON(huberr.ArgumentInvalid, nil, "methodName is required.")
	}
	if rt := b.ResponseTimeoutInSeconds; rt != nil {
		if *rt < minResponseTimeout || *rt > maxResponseTimeout {
			return m, huberr.NewJSON(huberr.ArgumentInvalid, nil, "responseTimeoutInSeconds must be within [5; 300].")
		}
		m.ResponseTimeoutInSeconds = *rt
	}
	if ct := b.ConnectTimeoutInSeconds; ct != nil {
		if *ct < 0 || *ct > maxConnectTimeout {
			return m, huberr.NewJSON(huberr.ArgumentInvalid, nil, "connectTimeoutInSeconds must be within [0; 300].")
		}
		m.ConnectTimeoutInSeconds = *ct
	}
	if len(b.Payload) > maxMethodPayload {
		return m, huberr.NewJSON(huberr.MessageTooLarge, nil, "The method payload is larger than 128 KB.")
	}
	return m, nil
}

func (s *Server) invokeMethod(_ http.ResponseWriter, r *http.Request) (any, error) {
	id := r.PathValue("id")
	m, err := parseMethod(r)
	if err != nil {
		return nil, err
	}
	if !s.opts.Registry.Has(id) {
		return nil, huberr.NewJSON(huberr.DeviceNotFound, nil, "Device %s not registered.", id)
	}
	if s.opts.Methods == nil {
		return nil, huberr.New(huberr.ServiceUnavailable, "Direct methods are not available on this hub.")
	}
	res, err := s.opts.Methods.Invoke(r.Context(), id, m)
	if err != nil {
		return nil, err
	}
	if len(res.Payload) == 0 {
		res.Payload = json.RawMessage("null")
	}
	return res, nil
}

// --- queries -----------------------------------------------------------------------------------

// queryError turns a query parse/compile error into the hub's 400 with the position.
func queryError(err error) error {
	var qe *query.Error
	if errors.As(err, &qe) {
		he := huberr.New(huberr.ArgumentInvalid, "The query is invalid: %s (line %d, column %d).", qe.Msg, qe.Pos.Line, qe.Pos.Col)
		he.Cause = err // errors.Is(he, query.ErrUndocumented) in-process
		return he
	}
	return huberr.New(huberr.ArgumentInvalid, "The query is invalid: %s.", err.Error())
}

func (s *Server) queryDevices(w http.ResponseWriter, r *http.Request) (any, error) {
	var spec hubapi.QuerySpecification // encoding/json matches "query" case-insensitively ("Query" from amenzhinsky)
	if err := decodeBody(r, &spec); err != nil {
		return nil, err
	}
	size, err := pageSize(r)
	if err != nil {
		return nil, err
	}
	rows, itemType, next, err := s.queryPage(spec.Query, r.Header.Get(hubapi.HeaderContinuation), size)
	if err != nil {
		return nil, err
	}
	writePageHeaders(w, itemType, next)
	return rows, nil
}

// QueryPage is one page of a query's results, as Query returns it.
type QueryPage struct {
	Items        []any  // twins, devices.jobs rows or projections; at most the page size
	ItemType     string // x-ms-item-type: "twin", "deviceJob" or "raw"
	Continuation string // "" on the last page
}

// Query runs a query text exactly as POST /devices/query does — the hub's dialect, the
// OnQuery report, the cursor cache and its continuation tokens — for in-process callers (the
// local hub's dashboard, internal/hub/dashboard), without SAS, counters or throttling.
// size is clamped to 1..100 as x-ms-max-item-count is. Errors are the *huberr.Error the REST
// answer would carry; a parse error wraps the positioned *query.Error (errors.As).
func (s *Server) Query(text, continuation string, size int) (QueryPage, error) {
	rows, itemType, next, err := s.queryPage(text, continuation, clampPageSize(size))
	if err != nil {
		return QueryPage{}, err
	}
	return QueryPage{Items: rows, ItemType: itemType, Continuation: next}, nil
}

// queryPage serves one page of a query (pageRows). Only a page that runs the statement
// compiles it (and reports it with the outcome); a page served from the cursor of an earlier
// one reports the text as accepted, since the cursor's key is the text this hub compiled and
// accepted then.
func (s *Server) queryPage(text, token string, size int) (rows []any, itemType, next string, err error) {
	ran := false
	run := s.queryRunner(text)
	rows, itemType, next, err = s.pageRows("q:"+text, token, size, func() ([]any, string, error) {
		ran = true
		return run()
	})
	if !ran && err == nil {
		s.onQuery(text, nil)
	}
	return rows, itemType, next, err
}

// queryRunner is the run function of a query's pages (see pageRows).
func (s *Server) queryRunner(text string) func() ([]any, string, error) {
	return func() ([]any, string, error) {
		p, err := s.compileQuery(text)
		s.onQuery(text, err)
		if err != nil {
			return nil, "", err
		}
		var each func(yield func(doc any) bool)
		switch p.Source() {
		case query.Devices:
			each = s.opts.Registry.ForEachTwin
		case query.Jobs:
			if s.opts.Jobs == nil {
				each = func(func(any) bool) {}
			} else {
				each = func(yield func(any) bool) {
					s.opts.Jobs.ForEachDeviceJob(func(row map[string]any) bool { return yield(row) })
				}
			}
		default: // devices.modules
			each = s.opts.Registry.ForEachModuleTwin
		}
		rows, err := p.Run(each)
		if err != nil {
			return nil, "", queryError(err)
		}
		return rows, p.ItemType(), nil
	}
}

// onQuery reports a POST /devices/query text to Options.OnQuery, if set.
func (s *Server) onQuery(text string, err error) {
	if s.opts.OnQuery != nil {
		s.opts.OnQuery(text, err)
	}
}

// compileQuery checks and compiles a POST /devices/query statement in the hub's dialect. Only
// pages that run the statement compile it; the parser enforces query.MaxLength.
func (s *Server) compileQuery(text string) (*query.Program, error) {
	if strings.TrimSpace(text) == "" {
		return nil, huberr.New(huberr.ArgumentNull, "The query is missing from the request body.")
	}
	q, err := query.ParseDialect(text, s.opts.QueryDialect)
	if err != nil {
		return nil, queryError(err)
	}
	p, err := query.Compile(q)
	if err != nil {
		return nil, queryError(err)
	}
	return p, nil
}

// --- jobs v2 -----------------------------------------------------------------------------------

func (s *Server) jobs() (Jobs, error) {
	if s.opts.Jobs == nil {
		return nil, huberr.New(huberr.ServiceUnavailable, "Jobs are not available on this hub.")
	}
	return s.opts.Jobs, nil
}

func (s *Server) createJob(_ http.ResponseWriter, r *http.Request) (any, error) {
	j, err := s.jobs()
	if err != nil {
		return nil, err
	}
	id := r.PathValue("id")
	var req hubapi.JobRequest
	var explicit struct {
		CloudToDeviceMethod *struct {
			ResponseTimeoutInSeconds *json.RawMessage `json:"responseTimeoutInSeconds"`
		} `json:"cloudToDeviceMethod"`
	}
	if err := decodeBody(r, &req, &explicit); err != nil {
		return nil, err
	}
	// hubapi.JobRequest cannot tell an explicit responseTimeoutInSeconds of 0 from an absent
	// one (omitempty, and 0 means "the default" to the jobs engine); the direct-method
	// endpoint refuses the explicit 0 (§4 of docs/hub-api.md: 5–300 s, as
	// https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods states the
	// range), and a job's method takes the same timeouts, so an explicit 0 is refused here too.
	if m := explicit.CloudToDeviceMethod; req.Type == hubapi.JobTypeDeviceMethod && m != nil &&
		m.ResponseTimeoutInSeconds != nil && string(*m.ResponseTimeoutInSeconds) != "null" &&
		req.CloudToDeviceMethod.ResponseTimeoutInSeconds == 0 {
		return nil, huberr.New(huberr.ArgumentInvalid, "responseTimeoutInSeconds must be within [5; 300].")
	}
	if req.JobID == "" {
		req.JobID = id
	}
	if req.JobID != id {
		return nil, huberr.New(huberr.ArgumentInvalid, "The jobId in the body (%s) does not match the one in the path (%s).", req.JobID, id)
	}
	return j.Create(req)
}

func (s *Server) getJob(_ http.ResponseWriter, r *http.Request) (any, error) {
	j, err := s.jobs()
	if err != nil {
		return nil, err
	}
	return j.Get(r.PathValue("id"))
}

func (s *Server) cancelJob(_ http.ResponseWriter, r *http.Request) (any, error) {
	j, err := s.jobs()
	if err != nil {
		return nil, err
	}
	return j.Cancel(r.PathValue("id"))
}

func (s *Server) queryJobs(w http.ResponseWriter, r *http.Request) (any, error) {
	j, err := s.jobs()
	if err != nil {
		return nil, err
	}
	jobType, status := r.URL.Query().Get("jobType"), r.URL.Query().Get("jobStatus")
	return s.page(w, r, "j:"+jobType+"\x00"+status, func() ([]any, string, error) {
		list := j.List(jobType, status)
		rows := make([]any, len(list))
		for i := range list {
			rows[i] = list[i]
		}
		return rows, "jobResponse", nil
	})
}

// ifMatch is the request's If-Match header for the registry and ADM, which treat an absent
// header and "*" as no condition. An empty entity tag ("" or W/"") is refused here with the
// answer to any etag that does not match (412 PreconditionFailed): RFC 9110 §8.8.3 makes ""
// a valid entity tag (opaque-tag = DQUOTE *etagc DQUOTE) that no representation has, so
// the condition of §13.1.1 is false whatever the resource's state, and §13.2.2 answers
// 412. Stripping the quotes would turn it into "no condition" and apply the write. Azure
// documents nothing for it [strict where the hub's docs are silent, docs/hub-api.md].
func ifMatch(r *http.Request) (string, error) {
	h := r.Header.Get("If-Match")
	if t := strings.TrimPrefix(strings.TrimSpace(h), "W/"); t == `""` {
		return "", huberr.New(huberr.PreconditionFailed, "Precondition failed: If-Match \"\" is an entity tag no resource has.")
	}
	return h, nil
}
