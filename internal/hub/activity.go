package hub

import (
	"context"
	"errors"
	"time"

	"github.com/iotplan/iotplan/internal/hub/dashboard"
	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// The dashboard's activity page (internal/hub/dashboard) shows recent direct-method calls
// and twin changes. They are recorded here, where the hub wires its parts together, and
// nowhere else: the invoker below stands between the REST API and jobs and the session table
// (every direct method passes through it), the registry's desired-change hook (Start) sees
// every desired change whoever made it, and the reporter below stands between the devices
// (MQTT and the simulated fleet) and the registry. Without a dashboard none of them is
// installed and the hot paths are as before. Recording is dashboard.Activity's bounded ring:
// a short mutex, no I/O, no waiting for readers.

// recordedInvoker records each direct method it routes to the session table.
type recordedInvoker struct {
	next interface {
		Invoke(ctx context.Context, deviceID string, m hubapi.CloudToDeviceMethod) (hubapi.CloudToDeviceMethodResult, error)
	}
	act    *dashboard.Activity
	source string
}

func (r recordedInvoker) Invoke(ctx context.Context, deviceID string, m hubapi.CloudToDeviceMethod) (hubapi.CloudToDeviceMethodResult, error) {
	start := time.Now()
	res, err := r.next.Invoke(ctx, deviceID, m)
	errName := ""
	if err != nil {
		errName = "Cancelled" // the caller went away (a context error)
		var he *huberr.Error
		if errors.As(err, &he) {
			errName = he.Code.Name()
		}
	}
	r.act.Method(r.source, deviceID, m.MethodName, res.Status, errName, time.Since(start))
	return res, err
}

// recordedReporter is the registry as devices see it, recording each reported patch that
// the registry accepted. Embedding keeps the registry's other methods (and the optional
// interfaces the MQTT endpoint looks for) as they are.
type recordedReporter struct {
	*registry.Registry
	act *dashboard.Activity
}

func (r recordedReporter) PatchReported(deviceID string, patch map[string]any) (int64, error) {
	v, err := r.Registry.PatchReported(deviceID, patch)
	if err == nil {
		r.act.Twin(dashboard.KindReported, dashboard.SourceDevice, deviceID, patch, v)
	}
	return v, err
}
