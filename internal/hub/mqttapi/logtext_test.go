package mqttapi

import (
	"github.com/iotplan/iotplan/internal/lockedbuf"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/iotplan/iotplan/internal/safetext"
)

// What a device sends reaches the hub's log escaped and bounded: a 64 KB CONNECT user name
// full of ESC sequences and newlines is refused and logged as one line of about 1 KiB, with
// no control byte, so it can neither flood the log, forge lines nor drive the terminal.
func TestLoggedDeviceTextIsBoundedAndEscaped(t *testing.T) {
	var logBuf lockedbuf.Buffer
	e := newEnvLogging(t, slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	key, _ := e.addDevice("d1", "")

	evil := "\x1b]0;owned\x07\x1b[2J\r\nlevel=ERROR msg=forged\x00"
	user := testHost + "/d1/?api-version=2021-04-12&x=" + strings.Repeat(evil, (64*1024-200)/len(evil))
	if _, err := e.raw("d1\x1b[31m", user, deviceToken(t, testHost, "d1", key, time.Now().Add(time.Hour)), true); err == nil {
		t.Fatal("CONNECT with a client id that is not the user name's device was accepted")
	}
	// A forbidden topic of 60 KB (without NUL, which MQTT forbids in topic names): logged
	// when the connection is closed for it.
	c := e.rawDevice("d1", key, true)
	topicEvil := strings.TrimSuffix(evil, "\x00")
	c.Publish("devices/other/"+strings.Repeat(topicEvil, 60*1024/len(topicEvil)), 0, false, "{}")
	waitFor(t, "the refusal and the disconnect logged", func() bool {
		out := logBuf.String()
		return strings.Contains(out, "MQTT CONNECT refused") && strings.Contains(out, "outside the device's topics")
	})

	out := logBuf.String()
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(line, "time=") {
			t.Errorf("a value broke out of its record: line %.120q", line)
		}
		// Each record has a few values, each at most MaxLogBytes once escaped; the text
		// handler quotes and doubles backslashes, so allow for that.
		if len(line) > 6*safetext.MaxLogBytes {
			t.Errorf("log line of %d bytes: %.200q", len(line), line)
		}
	}
	if strings.ContainsAny(out, "\x1b\x07\x00\r") {
		t.Errorf("raw control byte in the log")
	}
	if !strings.Contains(out, "bytes)") {
		t.Errorf("no value was marked as cut:\n%.500s", out)
	}
}
