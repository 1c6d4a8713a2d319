package cli

import (
	"strings"
	"testing"
)

// A malformed -var must not echo its value: with an empty name, what follows "=" is the value
// the user meant to pass, often a connection string or a key.
func TestVarFlagErrorsNeverEchoTheValue(t *testing.T) {
	const secret = "HostName=h;SharedAccessKeyName=o;SharedAccessKey=c2VjcmV0LWtleQ=="
	for _, arg := range []string{"=" + secret, " =" + secret} {
		f := configFlags{vars: []rawVar{{text: arg}}}
		_, err := f.variables()
		if err == nil {
			t.Fatalf("-var %q accepted", arg)
		}
		if msg := err.Error(); strings.Contains(msg, "c2VjcmV0") || strings.Contains(msg, "SharedAccessKey") || !strings.Contains(msg, "name=value") {
			t.Errorf("-var with an empty name: error %q (must say name=value and not echo the value)", msg)
		}
	}
	// Without "=", the argument is only a name: naming it helps and reveals no value.
	f := configFlags{vars: []rawVar{{text: "novalue"}}}
	if _, err := f.variables(); err == nil || !strings.Contains(err.Error(), `"novalue"`) {
		t.Errorf("-var novalue: %v", err)
	}
}
