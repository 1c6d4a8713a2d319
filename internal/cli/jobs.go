package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
	"github.com/iotplan/iotplan/internal/reconcile"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/schema"
)

var (
	errNoSuchJob = errors.New("the hub has no job with this id ('iotplan jobs list' shows the jobs it has)")
	errJobEnded  = errors.New("nothing to cancel")
	// errCancelNeedsTerminal: like apply, an unattended run never hangs on a prompt and never
	// acts without an explicit -auto-approve.
	errCancelNeedsTerminal = errors.New("cancelling a job needs confirmation and there is no terminal to ask on: re-run with -auto-approve")
)

// jobsLongFlags are the flags only 'iotplan jobs' has; they join longFlags so that they too
// may be written with one dash (-type, -limit).
var jobsLongFlags = []string{"type", "status", "failed-only", "limit"}

func init() {
	for _, name := range jobsLongFlags {
		longFlags[name] = true
	}
}

// jobsFlags are the flags every 'iotplan jobs' command takes: the hub, and the configuration
// (-var, -no-color) of the optional PATH that holds a hub block.
type jobsFlags struct {
	config configFlags
	hub    hubFlags
}

func (o *jobsFlags) register(fs *pflag.FlagSet) {
	o.config.register(fs)
	o.hub.register(fs)
}

// open talks to the hub of -dev, of the hub block in paths (read only when a PATH is given),
// or of IOTHUB_CONNECTION_STRING.
func (o *jobsFlags) open(ctx context.Context, s Streams, paths []string) (*hubSession, error) {
	var cfg *schema.Config
	if len(paths) > 0 {
		var err error
		if cfg, err = loadConfig(s, paths, &o.config); err != nil {
			return nil, err
		}
	}
	return openHub(ctx, o.hub, cfg, s.Err)
}

func (o *jobsFlags) renderOptions(s Streams) render.Options {
	return render.Options{Color: colorOn(s.OutTTY, &o.config)}
}

func newJobsCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, show and cancel the hub's jobs (iotplan's and any other's)",
		Long: `Lists, shows and cancels the IoT Hub jobs (jobs v2: scheduleUpdateTwin and
scheduleDeviceMethod) on the hub, whoever made them; iotplan's own have ids
starting with "iotplan-".

Each takes the hub flags of plan and apply, and an optional PATH (a .hcl file or a
directory of them) whose hub block names the hub.`,
		// Runnable, so that an unknown subcommand is a usage error rather than the help text.
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newJobsListCmd(s), newJobsShowCmd(s), newJobsCancelCmd(s))
	return cmd
}

// checkJobID refuses an empty ID before any hub is contacted; any other text is the hub's
// to judge (it answers 404 for an id it does not have).
func checkJobID(id string) error {
	if strings.TrimSpace(id) == "" {
		return flagErrorf("the job id is empty")
	}
	return nil
}

// openJob reads the job args[0] from the hub of args[1:] (see open); the caller closes the
// session when err is nil.
func (o *jobsFlags) openJob(ctx context.Context, s Streams, args []string) (*hubSession, hubapi.JobResponse, error) {
	if err := checkJobID(args[0]); err != nil {
		return nil, hubapi.JobResponse{}, err
	}
	hs, err := o.open(ctx, s, args[1:])
	if err != nil {
		return nil, hubapi.JobResponse{}, err
	}
	job, err := getJob(ctx, hs, args[0])
	if err != nil {
		hs.Close()
		return nil, job, err
	}
	return hs, job, nil
}

// getJob reads a job; an id the hub does not know is errNoSuchJob.
func getJob(ctx context.Context, hs *hubSession, id string) (hubapi.JobResponse, error) {
	j, err := hs.client.GetJob(ctx, id)
	if hubclient.IsStatus(err, http.StatusNotFound) {
		return j, fmt.Errorf("job %q on %s: %w", id, hs.name, errNoSuchJob)
	}
	if err != nil {
		return j, fmt.Errorf("reading job %q from %s: %w", id, hs.name, err)
	}
	return j, nil
}

type jobsListOptions struct {
	jobsFlags
	jobType, status string
	json            bool
}

func newJobsListCmd(s Streams) *cobra.Command {
	o := &jobsListOptions{}
	cmd := &cobra.Command{
		Use:   "list [-type scheduleUpdateTwin|scheduleDeviceMethod] [-status STATUS] [-json] [-dev] [PATH]",
		Short: "List the hub's jobs, newest first",
		Long: `Lists the hub's jobs, newest first: id, type, status, created, start and end
times (UTC), device statistics (succeeded, failed, total) and whether iotplan
made the job.

-status is queued, scheduled, running, completed, failed or cancelled.
-json writes one JSON document: {"format_version":"1","jobs":[…]} with each job
as the hub returned it (its JobResponse fields).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runJobsList(cmd, s, o, args) },
	}
	fs := cmd.Flags()
	o.register(fs)
	fs.StringVar(&o.jobType, "type", "", "only jobs of this type: scheduleUpdateTwin or scheduleDeviceMethod")
	fs.StringVar(&o.status, "status", "", "only jobs with this status: queued, scheduled, running, completed, failed or cancelled")
	fs.BoolVar(&o.json, "json", false, "write the jobs as one JSON document")
	return cmd
}

var jobStatuses = []string{hubapi.JobStatusQueued, hubapi.JobStatusEnqueued, hubapi.JobStatusScheduled,
	hubapi.JobStatusRunning, hubapi.JobStatusCompleted, hubapi.JobStatusFailed, hubapi.JobStatusCancelled}

func (o *jobsListOptions) check() error {
	if o.jobType != "" && o.jobType != hubapi.JobTypeUpdateTwin && o.jobType != hubapi.JobTypeDeviceMethod {
		return flagErrorf("-type %q: expected %s or %s", o.jobType, hubapi.JobTypeUpdateTwin, hubapi.JobTypeDeviceMethod)
	}
	if o.status != "" && !slices.Contains(jobStatuses, o.status) {
		return flagErrorf("-status %q: expected queued, scheduled, running, completed, failed or cancelled", o.status)
	}
	return nil
}

func runJobsList(cmd *cobra.Command, s Streams, o *jobsListOptions, args []string) error {
	if err := o.check(); err != nil {
		return err
	}
	hs, err := o.open(cmd.Context(), s, args)
	if err != nil {
		return err
	}
	defer hs.Close()
	jobs, err := listJobs(cmd.Context(), hs.client, o.jobType, o.status)
	if err != nil {
		return fmt.Errorf("listing the jobs of %s: %w", hs.name, err)
	}
	if o.json {
		return render.JobListJSON(s.Out, jobs)
	}
	var filter []string
	for _, f := range []string{o.jobType, o.status} {
		if f != "" {
			filter = append(filter, f)
		}
	}
	return render.JobList(s.Out, jobs, strings.Join(filter, ", "), o.renderOptions(s))
}

// listJobs lists the jobs of a type and status ("" = any). "queued" and "enqueued" are
// synonyms (hubapi.JobStatusEnqueued), so either filter reads both (each job once). The whole
// list is read (sorting newest first needs it): a hub keeps finished jobs for a limited time,
// so it stays small next to a job's device rows.
func listJobs(ctx context.Context, c *hubclient.Client, jobType, status string) ([]hubapi.JobResponse, error) {
	statuses := []string{status}
	if status == hubapi.JobStatusQueued || status == hubapi.JobStatusEnqueued {
		statuses = []string{hubapi.JobStatusQueued, hubapi.JobStatusEnqueued}
	}
	return c.ListJobsIn(ctx, jobType, statuses...)
}

type jobsShowOptions struct {
	jobsFlags
	failedOnly bool
	limit      int
	json       bool
}

func newJobsShowCmd(s Streams) *cobra.Command {
	o := &jobsShowOptions{}
	cmd := &cobra.Command{
		Use:   "show ID [-failed-only] [-limit N] [-json] [-dev] [PATH]",
		Short: "Show a job and its devices",
		Long: `Shows a job — type, status, times (UTC), query condition, method name or the twin
keys it writes, device statistics, failure reason — and then its devices, one per
line: id, status, and the hub's error (code: description) or the device's answer
(status: payload). Devices are read from devices.jobs page by page and written as
they arrive, however many there are; -limit N stops after N.

-failed-only lists only the devices that failed: those the hub marked failed and,
for a method job, those that answered with a status outside 200-299 (the hub
counts these completed).

-json writes JSON Lines, one object per line, as the rows arrive:
  {"format_version":"1","job":{…}}   first: the job (the hub's JobResponse)
  {"device_job":{…}}                 then one per device (a devices.jobs row)`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error { return runJobsShow(cmd, s, o, args) },
	}
	fs := cmd.Flags()
	o.register(fs)
	fs.BoolVar(&o.failedOnly, "failed-only", false, "list only the devices that failed")
	fs.IntVar(&o.limit, "limit", 0, "list at most N devices (0 = every device)")
	fs.BoolVar(&o.json, "json", false, "write JSON Lines: the job, then one line per device")
	return cmd
}

func runJobsShow(cmd *cobra.Command, s Streams, o *jobsShowOptions, args []string) error {
	if o.limit < 0 {
		return flagErrorf("-limit %d: expected 0 (no limit) or more", o.limit)
	}
	ctx := cmd.Context()
	hs, job, err := o.openJob(ctx, s, args)
	if err != nil {
		return err
	}
	defer hs.Close()
	view := render.NewJobShow(s.Out, o.renderOptions(s))
	if o.json {
		view = render.NewJobShowJSON(s.Out)
	}
	if err := view.Job(job); err != nil {
		return err
	}
	listed, more, err := streamDeviceJobs(ctx, hs.client, view, deviceListings(job, o.failedOnly), o.limit)
	if err != nil {
		return fmt.Errorf("reading the devices of job %s: %w", job.JobID, err)
	}
	return view.End(listed, more)
}

// deviceListing is one devices.jobs query of 'jobs show' and what it lists.
type deviceListing struct {
	kind  render.JobListing
	query string
}

// deviceListings: every row, or the failed rows and, for a method job, the rows whose
// device answered outside 200–299, which the hub counts completed
// (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods#response).
func deviceListings(job hubapi.JobResponse, failedOnly bool) []deviceListing {
	if !failedOnly {
		return []deviceListing{{render.ListAll, hubclient.DeviceJobsQuery(job.JobID, "")}}
	}
	ls := []deviceListing{{render.ListFailed, hubclient.DeviceJobsQuery(job.JobID, hubapi.DeviceJobFailed)}}
	if job.Type == hubapi.JobTypeDeviceMethod {
		ls = append(ls, deviceListing{render.ListMethodErrors, hubclient.MethodErrorsQuery(job.JobID)})
	}
	return ls
}

// streamDeviceJobs hands the rows of each listing to view as their pages arrive, at most
// limit in all (0: no limit). One row past the limit is read, not shown, so that more can
// say whether rows remain.
func streamDeviceJobs(ctx context.Context, c *hubclient.Client, view render.JobShow, ls []deviceListing, limit int) (listed int, more bool, err error) {
	for _, l := range ls {
		if err := view.Listing(l.kind); err != nil {
			return listed, false, err
		}
		read := 0
		if limit > 0 {
			read = limit - listed + 1
		}
		err := c.EachDeviceJob(ctx, l.query, read, func(dj hubapi.DeviceJob) error {
			if limit > 0 && listed == limit {
				more = true
				return nil
			}
			listed++
			return view.Device(dj)
		})
		if err != nil || more {
			return listed, more, err
		}
	}
	return listed, false, nil
}

type jobsCancelOptions struct {
	jobsFlags
	autoApprove bool
}

func newJobsCancelCmd(s Streams) *cobra.Command {
	o := &jobsCancelOptions{}
	cmd := &cobra.Command{
		Use:   "cancel ID [-auto-approve] [-dev] [PATH]",
		Short: "Cancel a job that has not ended",
		Long: `Shows the job, asks for 'yes', cancels it (POST /jobs/v2/{id}/cancel) and prints
its resulting status. Devices the job has not reached are not run; those it has
already run keep what it did.

Without a terminal to ask on, cancel refuses unless -auto-approve is given.

Exit codes: 0 cancelled, 1 otherwise (including a job that had already ended).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error { return runJobsCancel(cmd, s, o, args) },
	}
	fs := cmd.Flags()
	o.register(fs)
	fs.BoolVar(&o.autoApprove, "auto-approve", false, "cancel without asking for confirmation")
	return cmd
}

func runJobsCancel(cmd *cobra.Command, s Streams, o *jobsCancelOptions, args []string) error {
	if !o.autoApprove && !s.InTTY {
		return errCancelNeedsTerminal
	}
	ctx := cmd.Context()
	hs, job, err := o.openJob(ctx, s, args)
	if err != nil {
		return err
	}
	defer hs.Close()
	if err := render.JobDetail(s.Out, job, o.renderOptions(s)); err != nil {
		return err
	}
	if hubapi.JobEnded(job.Status) {
		return endedError(job, false)
	}
	if !o.autoApprove {
		if ok := confirmCancel(s, job.JobID, hs.name); !ok {
			fmt.Fprintf(s.Err, "\nNot cancelled: job %s was left as it is.\n", job.JobID)
			return &silentError{exitError}
		}
	}
	res, err := hs.client.CancelJob(ctx, job.JobID)
	if err != nil {
		return cancelError(job, hs, err)
	}
	if res.Status != hubapi.JobStatusCancelled && hubapi.JobEnded(res.Status) {
		return endedError(res, true)
	}
	return render.JobCancelled(s.Out, res, o.renderOptions(s))
}

// endedError says a job had already ended. The local hub answers a cancel of an ended job
// with 200 and the job unchanged; unchanged says that is what happened (the job ended between
// iotplan's read and its cancel).
func endedError(j hubapi.JobResponse, unchanged bool) error {
	when := ""
	if j.EndTime != nil && !j.EndTime.IsZero() {
		when = " at " + reconcile.TimeText(*j.EndTime)
	}
	if unchanged {
		return fmt.Errorf("job %s had already ended (%s%s) and the hub left it so: %w", j.JobID, j.Status, when, errJobEnded)
	}
	return fmt.Errorf("job %s has already ended (%s%s): %w", j.JobID, j.Status, when, errJobEnded)
}

// cancelError explains a refused cancel. Azure has answered
// "ErrorCode:OperationNotAllowedInCurrentState" for a running job
// (https://github.com/Azure/azure-iot-sdk-node/issues/464); any 4xx is the hub's refusal, told
// with the status the job had, never by matching the hub's text.
func cancelError(job hubapi.JobResponse, hs *hubSession, err error) error {
	var he *hubclient.Error
	switch {
	case hubclient.IsStatus(err, http.StatusNotFound):
		return fmt.Errorf("job %q on %s: %w", job.JobID, hs.name, errNoSuchJob)
	case errors.As(err, &he) && he.Status >= 400 && he.Status < 500:
		return fmt.Errorf("the hub refused to cancel job %s (%s): %w", job.JobID, job.Status, err)
	}
	return fmt.Errorf("cancelling job %s: %w", job.JobID, err)
}

// confirmCancel asks for "yes" on the terminal (runJobsCancel refuses earlier without one).
func confirmCancel(s Streams, jobID, hubName string) bool {
	return askYes(s, fmt.Sprintf("Do you want to cancel job %s on %s?", jobID, hubName))
}
