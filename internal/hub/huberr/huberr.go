// Package huberr is the local hub's error vocabulary: the one table that maps what went wrong
// inside the hub to what Azure IoT Hub puts on the wire (HTTP status, numeric error code, the
// code's name for the iothub-errorcode header, and which body envelope carries it). Every hub
// package returns *Error values; only the transports (REST, MQTT) turn them into bytes, so a
// given failure looks the same whichever way a client reaches it.
package huberr

import (
	"errors"
	"fmt"
	"net/http"
)

// Code is one of the hub's numeric error codes (e.g. 404001). The first three digits are the
// HTTP status.
type Code int

// The codes the local hub produces, with the names Azure uses (ErrorCode.cs in the C# SDK and
// the troubleshooting docs: https://learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes).
const (
	GenericBadRequest                         Code = 400000
	InvalidProtocolVersion                    Code = 400001
	ArgumentInvalid                           Code = 400004
	ArgumentNull                              Code = 400005
	IotHubFormatError                         Code = 400006
	DeviceDefinedMultipleTimes                Code = 400011
	BulkRegistryOperationFailure              Code = 400013
	InvalidConfigurationTargetCondition       Code = 400401
	InvalidConfigurationContent               Code = 400402
	CannotModifyImmutableConfigurationContent Code = 400403
	InvalidConfigurationCustomMetricsQuery    Code = 400404
	IotHubUnauthorizedAccess                  Code = 401002
	IotHubUnauthorized                        Code = 401003
	DeviceDisabled                            Code = 403012
	DeviceModelMaxPropertiesExceeded          Code = 403100
	JobQuotaExceeded                          Code = 403003
	GenericNotFound                           Code = 404000
	DeviceNotFound                            Code = 404001
	JobNotFound                               Code = 404002
	ModuleNotFound                            Code = 404010
	DeviceNotOnline                           Code = 404103
	ConfigurationNotFound                     Code = 404301
	GenericConflict                           Code = 409000
	DeviceAlreadyExists                       Code = 409001
	JobAlreadyExists                          Code = 409104
	ModuleAlreadyExistsOnDevice               Code = 409301
	ConfigurationAlreadyExists                Code = 409401
	PreconditionFailed                        Code = 412001
	MessageTooLarge                           Code = 413001
	ConfigurationCountLimitExceeded           Code = 413101
	ThrottlingException                       Code = 429001
	ThrottlingMaxActiveJobCountExceeded       Code = 429004
	ServerError                               Code = 500001
	ServiceUnavailable                        Code = 503001
	GatewayTimeout                            Code = 504101
)

var names = map[Code]string{
	GenericBadRequest:                         "GenericBadRequest",
	InvalidProtocolVersion:                    "InvalidProtocolVersion",
	ArgumentInvalid:                           "ArgumentInvalid",
	ArgumentNull:                              "ArgumentNull",
	IotHubFormatError:                         "IotHubFormatError",
	IotHubUnauthorizedAccess:                  "IotHubUnauthorizedAccess",
	IotHubUnauthorized:                        "IotHubUnauthorized",
	DeviceDisabled:                            "DeviceDisabled",
	JobQuotaExceeded:                          "JobQuotaExceeded",
	GenericNotFound:                           "GenericNotFound",
	DeviceNotFound:                            "DeviceNotFound",
	JobNotFound:                               "JobNotFound",
	ModuleNotFound:                            "ModuleNotFound",
	DeviceNotOnline:                           "DeviceNotOnline",
	GenericConflict:                           "GenericConflict",
	DeviceAlreadyExists:                       "DeviceAlreadyExists",
	JobAlreadyExists:                          "JobAlreadyExists",
	PreconditionFailed:                        "PreconditionFailed",
	MessageTooLarge:                           "MessageTooLarge",
	ThrottlingException:                       "ThrottlingException",
	ThrottlingMaxActiveJobCountExceeded:       "ThrottlingMaxActiveJobCountExceeded",
	ServerError:                               "ServerError",
	ServiceUnavailable:                        "ServiceUnavailable",
	GatewayTimeout:                            "GatewayTimeout",
	DeviceDefinedMultipleTimes:                "DeviceDefinedMultipleTimes",
	BulkRegistryOperationFailure:              "BulkRegistryOperationFailure",
	InvalidConfigurationTargetCondition:       "InvalidConfigurationTargetCondition",
	InvalidConfigurationContent:               "InvalidConfigurationContent",
	CannotModifyImmutableConfigurationContent: "CannotModifyImmutableConfigurationContent",
	InvalidConfigurationCustomMetricsQuery:    "InvalidConfigurationCustomMetricsQuery",
	DeviceModelMaxPropertiesExceeded:          "DeviceModelMaxPropertiesExceeded",
	ConfigurationNotFound:                     "ConfigurationNotFound",
	ModuleAlreadyExistsOnDevice:               "ModuleAlreadyExistsOnDevice",
	ConfigurationAlreadyExists:                "ConfigurationAlreadyExists",
	ConfigurationCountLimitExceeded:           "ConfigurationCountLimitExceeded",
}

// Name is the code's name as sent in the iothub-errorcode header and legacy bodies.
func (c Code) Name() string {
	if n, ok := names[c]; ok {
		return n
	}
	return fmt.Sprintf("Error%d", int(c))
}

// Status is the HTTP status that carries the code.
func (c Code) Status() int {
	s := int(c) / 1000
	if http.StatusText(s) == "" {
		return http.StatusInternalServerError
	}
	return s
}

// Format says which body envelope the hub uses for an error (see Azure/azure-iot-sdk-csharp
// common/src/service/ExceptionHandlingHelper.cs).
type Format int

const (
	// Legacy: {"Message":"ErrorCode:<Name>;<text>","ExceptionMessage":"Tracking ID:..."}
	// — registry, twins, jobs, queries, throttling.
	Legacy Format = iota
	// JSONMessage: {"Message":"{\"errorCode\":404103,...}","ExceptionMessage":""} — direct methods.
	JSONMessage
)

// Error is a hub error. Msg is the human text the hub would send; Info is the optional
// structured "info" object of the JSON-in-Message envelope (e.g. {"timeout":"00:00:00"}).
type Error struct {
	Code   Code
	Msg    string
	Format Format
	Info   map[string]any
	// Cause is the in-process error behind this one (a *query.Error, say), for errors.Is and
	// errors.As in the hub and its tests; it is never sent.
	Cause error
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code.Name(), int(e.Code), e.Msg) }

// Unwrap returns Cause.
func (e *Error) Unwrap() error { return e.Cause }

// New makes a legacy-format error.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// NewJSON makes an error sent in the JSON-in-Message envelope (direct-method style).
func NewJSON(code Code, info map[string]any, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...), Format: JSONMessage, Info: info}
}

// As returns err as an *Error, or a ServerError wrapping its text when it is not one, so a
// transport always has a code to send (internal errors never leak as bare 500s without a body).
func As(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	return &Error{Code: ServerError, Msg: "Internal server error."}
}

// Is reports whether err is a hub error with the given code.
func Is(err error, code Code) bool {
	var he *Error
	return errors.As(err, &he) && he.Code == code
}
