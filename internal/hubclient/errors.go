package hubclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// Error is a failure the hub reported: the HTTP status, the hub's numeric error code (e.g.
// 404001; 0 when the hub sent none we could read), the code's name (e.g. "DeviceNotFound") and
// the hub's human message. It never contains a key or a token.
type Error struct {
	Status  int
	Code    int
	Name    string
	Message string
	// Op is the kind of call that failed ("query", "job.create", …; see Client.Calls).
	Op string

	retryAfter time.Duration // from a Retry-After header; 0 when absent
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("iot hub")
	if e.Op != "" {
		b.WriteString(" " + e.Op)
	}
	b.WriteString(": ")
	switch {
	case e.Name != "" && e.Code != 0:
		fmt.Fprintf(&b, "%s (%d)", e.Name, e.Code)
	case e.Name != "":
		b.WriteString(e.Name)
	default:
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// IsCode reports whether err is a hub *Error with the given numeric code (e.g.
// hubapi.CodeJobNotFound).
func IsCode(err error, code int) bool {
	var he *Error
	return errors.As(err, &he) && he.Code == code
}

// IsStatus reports whether err is a hub *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var he *Error
	return errors.As(err, &he) && he.Status == status
}

// codesByName maps the hub's error-code names to their numbers (https://learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes), so a
// legacy "ErrorCode:<Name>;…" body or an iothub-errorcode header yields the number too.
var codesByName = map[string]int{
	"GenericBadRequest": 400000, "InvalidProtocolVersion": 400001, "DeviceInvalidResultCount": 400002,
	"InvalidOperation": 400003, "ArgumentInvalid": 400004, "ArgumentNull": 400005,
	"IotHubFormatError": 400006, "DeviceDefinedMultipleTimes": 400011, "DeserializationError": 400012,
	"BulkRegistryOperationFailure": 400013, "EtagDoesNotMatch": 400023, "RequestTimedOut": 400024,
	"InvalidConfigurationTargetCondition": 400401, "InvalidConfigurationContent": 400402,
	"CannotModifyImmutableConfigurationContent": 400403, "InvalidConfigurationCustomMetricsQuery": 400404,
	"GenericUnauthorized": 401000, "IotHubNotFound": 401001, "IotHubUnauthorizedAccess": 401002,
	"IotHubUnauthorized": 401003, "SystemModuleModifyUnauthorizedAccess": 401100,
	"GenericForbidden": 403000, "IotHubSuspended": 403001, "IotHubQuotaExceeded": 403002,
	"JobQuotaExceeded": 403003, "OperationNotAvailableInCurrentTier": 403010, "DeviceDisabled": 403012,
	"DeviceModelMaxPropertiesExceeded": 403100, "DeviceMaximumInflightMethodExceeded": 403800,
	"GenericNotFound": 404000, "DeviceNotFound": 404001, "JobNotFound": 404002, "ModuleNotFound": 404010,
	"DeviceNotOnline": 404103, "DeviceConnectionClosedRemotely": 404104, "ConfigurationNotFound": 404301,
	"GenericConflict": 409000, "DeviceAlreadyExists": 409001, "DeviceJobAlreadyExists": 409103,
	"JobAlreadyExists": 409104, "ModuleAlreadyExistsOnDevice": 409301, "ConfigurationAlreadyExists": 409401,
	"GenericPreconditionFailed": 412000, "PreconditionFailed": 412001, "DeviceMessageLockLost": 412002,
	"JobRunPreconditionFailed": 412003,
	"MessageTooLarge":          413001, "TooManyDevices": 413002, "TooManyModulesOnDevice": 413003,
	"ConfigurationCountLimitExceeded": 413101,
	"GenericTooManyRequests":          429000, "ThrottlingException": 429001, "ThrottleBacklogLimitExceeded": 429002,
	"ThrottlingBacklogTimeout": 429003, "ThrottlingMaxActiveJobCountExceeded": 429004,
	"DeviceThrottlingLimitExceeded": 429005,
	"ServerError":                   500001, "GenericTimeout": 500008, "ServiceUnavailable": 503001, "ServerBusy": 503005,
	"GenericGatewayTimeout": 504000, "GatewayTimeout": 504101,
}

// namesByCode is the reverse of codesByName.
var namesByCode = func() map[int]string {
	m := make(map[int]string, len(codesByName))
	for n, c := range codesByName {
		m[c] = n
	}
	return m
}()

// maxMessage bounds how much of an unrecognised body ends up in an error message.
const maxMessage = 300

// parseError builds an *Error from a non-success response. The hub uses two envelopes
// (Azure/azure-iot-sdk-csharp common/src/service/ExceptionHandlingHelper.cs): {"Message":"ErrorCode:<Name>;<text>",…} and
// {"Message":"{\"errorCode\":404103,…,\"message\":\"…\"}",…}, plus the iothub-errorcode header;
// MQTT-style bare {"errorCode":…} objects are accepted too. Anything else keeps the status and a
// bounded excerpt of the body.
func parseError(status int, header http.Header, body []byte) *Error {
	e := &Error{Status: status}
	if header != nil {
		e.Name = strings.TrimSpace(header.Get(hubapi.HeaderErrorCode))
		e.retryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
	}
	trimmed := strings.TrimSpace(string(body))
	var env map[string]json.RawMessage
	if err := json.Unmarshal(body, &env); err == nil && env != nil {
		var msg string
		var code int
		switch {
		case json.Unmarshal(env["Message"], &msg) == nil && msg != "":
			parseMessage(e, msg)
		case json.Unmarshal(env["errorCode"], &code) == nil && code != 0:
			e.Code = code
			_ = json.Unmarshal(env["message"], &e.Message)
		default:
			e.Message = excerpt(trimmed)
		}
	} else if trimmed != "" {
		e.Message = excerpt(trimmed)
	}
	// Fill whichever of name and code is still missing from the other.
	if e.Name == "" && e.Code != 0 {
		e.Name = namesByCode[e.Code]
	}
	if e.Code == 0 && e.Name != "" {
		if c, ok := codesByName[e.Name]; ok {
			e.Code = c
		} else if n, err := strconv.Atoi(e.Name); err == nil && n >= 100000 {
			e.Code, e.Name = n, namesByCode[n]
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// parseMessage reads the Message field of the envelope: a JSON-encoded detail object, or
// "ErrorCode:<Name>;<text>", or plain text.
func parseMessage(e *Error, msg string) {
	msg = strings.TrimSpace(msg)
	if strings.HasPrefix(msg, "{") {
		var d hubapi.ErrorDetail
		if json.Unmarshal([]byte(msg), &d) == nil {
			e.Code = d.ErrorCode
			e.Message = d.Message
			return
		}
	}
	if rest, ok := strings.CutPrefix(msg, "ErrorCode:"); ok {
		name, text, _ := strings.Cut(rest, ";")
		name = strings.TrimSpace(name)
		if e.Name == "" {
			e.Name = name
		}
		if c, ok := codesByName[name]; ok {
			e.Code = c
		}
		e.Message = strings.TrimSpace(text)
		return
	}
	e.Message = excerpt(msg)
}

func excerpt(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return s
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// fromService converts the errors of amenzhinsky's iotservice client (which only keeps the
// status and body) into *Error.
func fromService(op string, err error) error {
	if err == nil {
		return nil
	}
	var re *iotservice.RequestError
	if errors.As(err, &re) {
		e := parseError(re.Code, nil, re.Body)
		e.Op = op
		return e
	}
	var be *iotservice.BadRequestError
	if errors.As(err, &be) {
		e := &Error{Status: http.StatusBadRequest}
		parseMessage(e, be.Message)
		if e.Code == 0 && e.Name != "" {
			e.Code = codesByName[e.Name]
		}
		if e.Name == "" && e.Code != 0 {
			e.Name = namesByCode[e.Code]
		}
		e.Op = op
		return e
	}
	return fmt.Errorf("iot hub %s: %w", op, err)
}

// HTTPStatus is the response's status code (lets packages that must not import hubclient,
// such as reconcile, recognise a conflict).
func (e *Error) HTTPStatus() int { return e.Status }

// HubCode is the hub's numeric error code (e.g. 429004), 0 when none was read: packages that
// take a client through an interface recognise codes with it, without importing this one.
func (e *Error) HubCode() int { return e.Code }
