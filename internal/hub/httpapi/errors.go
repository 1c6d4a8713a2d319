package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

const contentTypeJSON = "application/json; charset=utf-8"

// writeJSON writes v with status 200. Every success body carries the JSON content type:
// Node's SDK ignores bodies without it.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	status := http.StatusOK
	if sb, ok := v.(statusBody); ok {
		status, v = sb.status, sb.body
	}
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("httpapi: encode response", "route", r.Pattern, "err", err)
		s.writeError(w, r, huberr.New(huberr.ServerError, "Internal server error."))
		return
	}
	w.Header().Set("Content-Type", contentTypeJSON)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func trackingID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeError is the one place that turns an error into the hub's wire error: HTTP status from
// the code, the iothub-errorcode header, and the body in the code's envelope (legacy
// "ErrorCode:<Name>;<text>" or JSON-in-Message), see Azure/azure-iot-sdk-csharp
// common/src/service/ExceptionHandlingHelper.cs and Azure/azure-iot-hub-node src/common-http/http.ts.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	he := huberr.As(err)
	if he.Code == huberr.ServerError {
		s.log.Error("httpapi: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	now := s.opts.Now().UTC()
	id := trackingID()
	var body hubapi.ErrorBody
	switch he.Format {
	case huberr.JSONMessage:
		info := he.Info
		if info == nil {
			info = map[string]any{}
		}
		detail, _ := json.Marshal(hubapi.ErrorDetail{
			ErrorCode:    int(he.Code),
			TrackingID:   id + "-G:0-TimeStamp:" + now.Format("01/02/2006 15:04:05"),
			Message:      he.Msg,
			Info:         info,
			TimestampUTC: now.Format("2006-01-02T15:04:05.0000000Z"),
		})
		body = hubapi.ErrorBody{Message: string(detail), ExceptionMessage: ""}
	default:
		// ';' separates the code from the text in the legacy envelope and Node splits on it:
		// keep the message to one field.
		msg := strings.ReplaceAll(he.Msg, ";", ",")
		body = hubapi.ErrorBody{
			Message:          "ErrorCode:" + he.Code.Name() + ";" + msg,
			ExceptionMessage: "Tracking ID:" + id + "-G:0-TimeStamp:" + now.Format("01/02/2006 15:04:05"),
		}
	}
	b, _ := json.Marshal(body)
	h := w.Header()
	h.Set(hubapi.HeaderErrorCode, he.Code.Name())
	h.Set("Content-Type", contentTypeJSON)
	w.WriteHeader(he.Code.Status())
	_, _ = w.Write(b)
}

// statusBody is a success body sent with another status than 200 (the bulk registry
// operation answers 400 with its result when a device failed, which amenzhinsky decodes).
type statusBody struct {
	status int
	body   any
}

func errNoRoute(r *http.Request) error {
	return huberr.New(huberr.GenericNotFound, "The requested resource does not exist: %s %s.", r.Method, r.URL.Path)
}

// checkAPIVersion enforces the mandatory api-version query parameter (400001).
func checkAPIVersion(r *http.Request) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return huberr.New(huberr.InvalidProtocolVersion, "The api-version query parameter is required.")
	}
	if !supportedAPIVersion(v) {
		return huberr.New(huberr.InvalidProtocolVersion, "The api-version %q is not supported by the IoT hub endpoint (supported: %s to %s).", v, hubapi.MinAPIVersion, hubapi.APIVersion)
	}
	return nil
}

// supportedAPIVersion accepts the dated versions from MinAPIVersion to APIVersion, including
// "-preview" variants of them. [inferred: the hub also knows older and preview versions; these
// are the ones current SDKs send.]
func supportedAPIVersion(v string) bool {
	base, ok := hubapi.APIVersionDate(v)
	return ok && base >= hubapi.MinAPIVersion && base <= hubapi.APIVersion
}
