package hubclient

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
)

// ListJobsIn reads each status once, with the type filter, and lists each job once: a job
// read under two statuses keeps its later record, in the place of its first.
func TestListJobsInDeduplicates(t *testing.T) {
	var mu sync.Mutex // the server's goroutines append, the test reads
	var asked []string
	f := &faultServer{reply: func(_ int, r *http.Request, w http.ResponseWriter) {
		q := r.URL.Query()
		mu.Lock()
		asked = append(asked, q.Get("jobType")+"/"+q.Get("jobStatus"))
		mu.Unlock()
		switch q.Get("jobStatus") {
		case "queued":
			fmt.Fprint(w, `[{"jobId":"a","status":"queued"},{"jobId":"b","status":"queued"}]`)
		case "running":
			fmt.Fprint(w, `[{"jobId":"c","status":"running"},{"jobId":"a","status":"running"}]`)
		default:
			fmt.Fprint(w, `[{"jobId":"z","status":"completed"}]`)
		}
	}}
	c := f.start(t)
	jobs, err := c.ListJobsIn(context.Background(), "scheduleUpdateTwin", "queued", "running")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.JobID+":"+j.Status)
	}
	if want := []string{"a:running", "b:queued", "c:running"}; !slices.Equal(got, want) {
		t.Errorf("jobs %v, want %v", got, want)
	}
	mu.Lock()
	if want := []string{"scheduleUpdateTwin/queued", "scheduleUpdateTwin/running"}; !slices.Equal(asked, want) {
		t.Errorf("asked %v, want %v", asked, want)
	}
	asked = nil
	mu.Unlock()
	// No status: every job, one read.
	jobs, err = c.ListJobsIn(context.Background(), "")
	mu.Lock()
	defer mu.Unlock()
	if err != nil || len(jobs) != 1 || jobs[0].JobID != "z" || !slices.Equal(asked, []string{"/"}) {
		t.Errorf("no status: %v %v, asked %v", jobs, err, asked)
	}
}
