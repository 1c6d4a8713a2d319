package safetext

import (
	"bytes"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"door-01":               "door-01",
		"a\x1b[31mred\x1b[0m":   `a\x1b[31mred\x1b[0m`,
		"line\r\nforged=1":      `line\r\nforged=1`,
		"nul\x00tab\tdel\x7f":   `nul\x00tab\tdel\x7f`,
		"bad\xff\xfeutf8":       `bad\xff\xfeutf8`,
		"c1\u0085bidi\u202etxt": `c1\u0085bidi\u202etxt`,
		`back\slash`:            `back\slash`,
		"héllo ✓":               "héllo ✓",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
	if got := EscapeExcept("a\tb\nc\x1b", "\t\n"); got != "a\tb\nc\\x1b" {
		t.Errorf("EscapeExcept = %q", got)
	}
}

func TestLogBoundsAndEscapes(t *testing.T) {
	huge := strings.Repeat("ab\x1b[2J\n\x00", 64*1024/7)
	got := Log(huge)
	if len(got) > MaxLogBytes {
		t.Errorf("len(Log) = %d, want <= %d", len(got), MaxLogBytes)
	}
	if !strings.HasSuffix(got, "…("+itoa(len(huge))+" bytes)") {
		t.Errorf("no length suffix: %q", got[len(got)-40:])
	}
	if strings.ContainsAny(got, "\x1b\n\x00") || !utf8.ValidString(got) {
		t.Errorf("raw control byte or invalid UTF-8 in %q", got)
	}
	// The cut never splits an escape: what precedes the suffix ends with a whole one.
	body := strings.TrimSuffix(got, "…("+itoa(len(huge))+" bytes)")
	if i := strings.LastIndexByte(body, '\\'); i >= 0 && len(body)-i < 4 && body[i+1] == 'x' {
		t.Errorf("escape cut in half at the end: %q", body[i:])
	}
	if Log(got) != got {
		t.Errorf("Log is not idempotent")
	}
	// Multi-byte characters are not split either.
	if s := Log(strings.Repeat("é", 2000)); !utf8.ValidString(s) || len(s) > MaxLogBytes {
		t.Errorf("Log(é×2000): valid %v, %d bytes", utf8.ValidString(s), len(s))
	}
	if s := "short\x1b"; Log(s) != `short\x1b` {
		t.Errorf("Log(%q) = %q", s, Log(s))
	}
}

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(NewLogHandler(slog.NewTextHandler(&buf, nil)))
	l = slog.New(NewLogHandler(l.Handler())) // wrapping twice is harmless
	evil := "x\x1b]0;pwned\x07\n" + strings.Repeat("A", 70000)
	l.With("pre", evil).Info("refused\n"+evil, "user", evil, "err", errors.New(evil),
		"raw", []byte(evil), slog.Group("g", "inner", evil), "n", 3)
	out := buf.String()
	if strings.Count(out, "\n") != 1 || strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("log record is not one escaped line: %q", out[:200])
	}
	// Six values, each at most MaxLogBytes, plus keys and the time.
	if len(out) > 8*MaxLogBytes {
		t.Errorf("log line is %d bytes", len(out))
	}
	cut := "…(" + itoa(len(evil)) + " bytes)"
	if strings.Count(out, cut) != 5 || !strings.Contains(out, "…("+itoa(len("refused\n"+evil))+" bytes)") ||
		!strings.Contains(out, "n=3") {
		t.Errorf("values not all clipped: %s", out)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
