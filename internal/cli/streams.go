package cli

import (
	"io"
	"os"
	"strings"

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
	// Width is the terminal width for wrapping diagnostics and drawing progress bars (80
	// when unknown).
	Width int
	// CI says the run is in a CI pipeline: apply's progress is then written as plain lines
	// even on a terminal, because CI logs keep every redraw of a bar.
	CI bool
}

// progressBars says whether apply draws its progress as bars: on a terminal, outside CI.
// Tests set ErrTTY on a Streams writing to a buffer to draw them without a terminal.
func (s Streams) progressBars() bool { return s.ErrTTY && !s.CI }

// inCI recognises a CI pipeline by the variables the common ones set: CI (GitHub Actions,
// https://docs.github.com/en/actions/reference/workflows-and-actions/variables#default-environment-variables;
// GitLab CI/CD, https://docs.gitlab.com/ci/variables/predefined_variables/; and most others)
// and TF_BUILD (Azure Pipelines,
// https://learn.microsoft.com/azure/devops/pipelines/build/variables#system-variables).
// CI=false, as some set to say "not CI", does not count.
func inCI(getenv func(string) string) bool {
	switch v := strings.ToLower(strings.TrimSpace(getenv("CI"))); v {
	case "", "0", "false", "no":
	default:
		return true
	}
	return strings.EqualFold(strings.TrimSpace(getenv("TF_BUILD")), "true")
}

// SystemStreams returns the process's own streams with terminal detection.
func SystemStreams() Streams {
	s := Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Width: 80, CI: inCI(os.Getenv)}
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
