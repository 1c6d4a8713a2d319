package cli

import (
	"io"
	"os"

	"golang.org/x/term"
)

// Streams are the standard streams of one command run. Data (plans, results) goes to Out;
// diagnostics, prompts and progress go to Err, so `iotplan plan > plan.txt` stays clean.
type Streams struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer

	// InTTY says whether In is a terminal a person can answer a prompt on; ErrTTY whether
	// live progress lines (rewritten in place) can be drawn on Err.
	InTTY  bool
	OutTTY bool
	ErrTTY bool
	// Width is the terminal width for wrapping diagnostics (80 when unknown).
	Width int
}

// SystemStreams returns the process's own streams with terminal detection.
func SystemStreams() Streams {
	s := Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Width: 80}
	s.InTTY = term.IsTerminal(int(os.Stdin.Fd()))
	s.OutTTY = term.IsTerminal(int(os.Stdout.Fd()))
	s.ErrTTY = term.IsTerminal(int(os.Stderr.Fd()))
	if s.ErrTTY {
		if w, _, err := term.GetSize(int(os.Stderr.Fd())); err == nil && w > 20 {
			s.Width = w
		}
	}
	return s
}
