package hubapi

import "errors"

// Error codes that iotplan acts on, from the hub's error-code list
// (https://learn.microsoft.com/azure/iot-hub/troubleshoot-error-codes).
const (
	// CodeJobNotFound: no job has the id.
	CodeJobNotFound = 404002
	// CodeTooManyActiveJobs (ThrottlingMaxActiveJobCountExceeded): a job was refused because
	// every job slot of the tier is held (1 on S1, 5 on S2, 10 on S3).
	CodeTooManyActiveJobs = 429004
)

// StatusOf is the HTTP status of a hub error in err's chain (an error with an HTTPStatus
// method, as the hub client's are); 0 when there is none. Packages that take their hub through
// an interface (reconcile, state) read hub errors with it without importing the client.
func StatusOf(err error) int {
	var e interface{ HTTPStatus() int }
	if errors.As(err, &e) {
		return e.HTTPStatus()
	}
	return 0
}

// CodeOf is the hub's numeric error code (e.g. 429004) of a hub error in err's chain; 0 when
// there is none.
func CodeOf(err error) int {
	var e interface{ HubCode() int }
	if errors.As(err, &e) {
		return e.HubCode()
	}
	return 0
}
