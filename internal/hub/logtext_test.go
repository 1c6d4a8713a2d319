package hub_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/iotplan/iotplan/internal/hub"
	"github.com/iotplan/iotplan/internal/safetext"
)

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A client's query text reaches the hub's log (debug level) escaped and bounded, through the
// logger the hub wraps for every package.
func TestHubLogEscapesAndBoundsClientText(t *testing.T) {
	var logBuf lockedLog
	h, err := hub.Start(context.Background(), hub.Options{DataDir: t.TempDir(), HTTPSAddr: "127.0.0.1:0",
		Logger: slog.New(slog.NewJSONHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := client(t, h, h.ServiceConnectionString())
	q := "SELECT * FROM devices WHERE tags.x = '" + strings.Repeat("\x1b[2J\u202e\r\n", 8000) + "'"
	_ = c.QueryDevices(context.Background(), q, func(map[string]any) error { return nil })

	out := logBuf.String()
	var found bool
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.Contains(line, `"query"`) {
			continue
		}
		found = true
		// The JSON handler escapes ESC itself; what it cannot bound, and passes through
		// raw, is the rest: U+202E, and the 64 KB.
		if len(line) > 4*safetext.MaxLogBytes || strings.ContainsRune(line, '\u202e') {
			t.Errorf("query logged as %d bytes: %.200s", len(line), line)
		}
		if !strings.Contains(line, "bytes)") {
			t.Errorf("query not marked as cut: %.200s", line)
		}
	}
	if !found {
		t.Fatalf("the query was not logged:\n%.2000s", out)
	}
}
