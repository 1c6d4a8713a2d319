package state

import (
	"errors"
	"fmt"
	"regexp"
)

// DefaultName is the state a configuration uses when it names none.
const DefaultName = "default"

// devicePrefix begins the id of the device identity whose twin holds a named state.
const devicePrefix = "iotplan-state-"

// ErrName: a state name breaks the naming rule.
var ErrName = errors.New("invalid state name")

var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$`)

// CheckName reports whether name can name a state: 1 to 48 lower-case letters, digits and
// dashes, starting and ending with a letter or digit, so that the state's device id
// ("iotplan-state-" + name) is a valid IoT Hub device id and reads well in the portal.
func CheckName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("%w %q: use 1 to 48 lower-case letters, digits and dashes, starting and ending with a letter or digit", ErrName, name)
	}
	return nil
}

// DeviceID is the id of the device identity whose twin holds the named state.
func DeviceID(name string) string { return devicePrefix + name }
