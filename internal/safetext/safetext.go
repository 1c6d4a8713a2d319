// Package safetext makes text that came from outside the process (a device's MQTT user name,
// a request path, a query, a configuration file's bytes) safe to print on a terminal or in a
// log: every control character, invalid UTF-8 byte and bidirectional-override character is
// written as a Go-style escape, so it can neither move the cursor, recolour the screen, forge a
// log line nor reorder what a reader sees ("Trojan Source", CVE-2021-42574,
// https://trojansource.codes/). Log values are also bounded (Log, NewLogHandler), so one
// client cannot write megabyte lines into the hub's log.
//
// Imports: stdlib only.
package safetext

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with control characters (C0 including tab and newline, DEL, C1), invalid
// UTF-8 bytes and bidirectional formatting characters escaped: "\x1b", "\n", "\x00", "\xff",
// "\u202e". Everything else, including a backslash, is kept as it is.
func Escape(s string) string { return EscapeExcept(s, "") }

// EscapeExcept is Escape leaving the characters of keep as they are: "\t" for source lines
// whose tabs align carets, "\t\n" for text of several lines.
func EscapeExcept(s, keep string) string {
	if clean(s, keep) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		writeRune(&b, r, size, s[i], keep)
		i += size
	}
	return b.String()
}

// clean reports whether s needs no escaping (the common case, without allocating).
func clean(s, keep string) bool {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				return false
			}
		}
		if mustEscape(r) && !strings.ContainsRune(keep, r) {
			return false
		}
	}
	return true
}

// writeRune writes one decoded rune (or the invalid byte b when size is 1 and r is
// RuneError), escaped if it must be.
func writeRune(b *strings.Builder, r rune, size int, first byte, keep string) {
	switch {
	case r == utf8.RuneError && size == 1:
		fmt.Fprintf(b, `\x%02x`, first)
	case !mustEscape(r) || strings.ContainsRune(keep, r):
		b.WriteRune(r)
	case r == '\n':
		b.WriteString(`\n`)
	case r == '\r':
		b.WriteString(`\r`)
	case r == '\t':
		b.WriteString(`\t`)
	case r < 0x80:
		fmt.Fprintf(b, `\x%02x`, r)
	default:
		fmt.Fprintf(b, `\u%04x`, r)
	}
}

// mustEscape: control characters, and the Unicode bidirectional formatting characters
// (embeddings, overrides, isolates, marks; Unicode Standard Annex #9), which reorder text.
func mustEscape(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) ||
		r == '\u2028' || r == '\u2029' // line and paragraph separators
}

// MaxLogBytes bounds one log value: enough for any device id (128 characters), topic or
// query Azure accepts to be read in full, far below what one client could send (an MQTT
// user name may be 64 KiB).
const MaxLogBytes = 1024

// Log is the rule for client-supplied text in the hub's log: Escape, then, if longer than
// MaxLogBytes, cut at a character boundary and followed by "…(N bytes)" with N the length
// of the original. The result is at most MaxLogBytes long, and Log(Log(s)) == Log(s).
func Log(s string) string {
	e := Escape(s)
	if len(e) <= MaxLogBytes {
		return e
	}
	suffix := fmt.Sprintf("…(%d bytes)", len(s))
	cut := MaxLogBytes - len(suffix)
	for cut > 0 && !utf8.RuneStart(e[cut]) {
		cut--
	}
	// Never end inside an escape ("\x1" of "\x1b"): back up to before its backslash.
	if j := strings.LastIndexByte(e[max(0, cut-5):cut], '\\'); j >= 0 {
		cut = max(0, cut-5) + j
	}
	return e[:cut] + suffix
}
