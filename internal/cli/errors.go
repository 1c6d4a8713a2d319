package cli

import (
	"errors"
	"fmt"
)

// Exit codes, as Terraform's: 0 success (or no changes), 1 error, 2 success with changes
// present (plan -detailed-exitcode only).
const (
	exitOK      = 0
	exitError   = 1
	exitChanges = 2
)

// flagError is a usage mistake: the message is followed by a hint to run --help.
type flagError struct{ err error }

func (e *flagError) Error() string { return e.err.Error() }
func (e *flagError) Unwrap() error { return e.err }

func flagErrorf(format string, args ...any) error {
	return &flagError{fmt.Errorf(format, args...)}
}

// silentError ends the command with an exit code after the command has already explained
// itself (diagnostics, failed devices), so Main prints nothing more.
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode maps what a command returned to the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var se *silentError
	if errors.As(err, &se) {
		return se.code
	}
	return exitError
}
