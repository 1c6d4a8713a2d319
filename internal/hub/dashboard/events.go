package dashboard

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Event-stream bounds: one small message a second per open page, a bounded number of
// pages, a bounded slice of activity per message.
const (
	streamInterval   = time.Second
	maxStreams       = 32
	maxEventsPerTick = 100
)

// liveMessage is one server-sent event: the summary, the live jobs and the activity since
// the previous message.
type liveMessage struct {
	Summary  summary      `json:"summary"`
	Jobs     []jobSummary `json:"jobs"`
	Activity []Event      `json:"activity"`
	Skipped  uint64       `json:"activitySkipped"` // events since the last message not sent
}

// events streams liveMessages (text/event-stream) until the page goes away or the hub
// closes. Activity starts at the newest event; the page reads the history with
// /ui/api/activity.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	if !s.acquireStream() {
		writeAPIError(w, &apiError{Status: http.StatusServiceUnavailable, Message: "Too many dashboard pages are open; close some."})
		return
	}
	defer s.releaseStream()
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// A page that loses the stream reconnects after 2 s (EventSource's retry field).
	if _, err := w.Write([]byte("retry: 2000\n\n")); err != nil {
		return
	}
	var after uint64
	if a := r.URL.Query().Get("after"); a != "" {
		after, _ = strconv.ParseUint(a, 10, 64)
	} else {
		_, _, after = s.opts.Activity.Since(^uint64(0), 1)
	}
	tick := time.NewTicker(streamInterval)
	defer tick.Stop()
	for {
		ev, skipped, last := s.opts.Activity.Since(after, maxEventsPerTick)
		if ev == nil {
			ev = []Event{}
		}
		after = last
		b, err := json.Marshal(liveMessage{Summary: s.summary(), Jobs: s.liveJobs(), Activity: ev, Skipped: skipped})
		if err != nil {
			return
		}
		if _, err := w.Write(append(append([]byte("event: live\ndata: "), b...), "\n\n"...)); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}

func (s *Server) acquireStream() bool {
	s.streamsMu.Lock()
	defer s.streamsMu.Unlock()
	if s.streams >= maxStreams {
		return false
	}
	s.streams++
	return true
}

func (s *Server) releaseStream() {
	s.streamsMu.Lock()
	s.streams--
	s.streamsMu.Unlock()
}
