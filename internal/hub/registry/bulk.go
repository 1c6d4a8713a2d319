package registry

import (
	"strings"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// MaxBulkDevices is how many devices one bulk registry operation (POST /devices) may carry
// (the SDKs' documented limit for AddDevices2Async & co.).
const MaxBulkDevices = 100

// Import modes of a bulk registry operation (ExportImportDevice.importMode), compared
// case-insensitively (amenzhinsky sends "create" and "UpdateIfMatchETag" spellings).
const (
	ModeCreate                = "create"
	ModeUpdate                = "update"
	ModeUpdateIfMatchETag     = "updateIfMatchETag"
	ModeDelete                = "delete"
	ModeDeleteIfMatchETag     = "deleteIfMatchETag"
	ModeUpdateTwin            = "updateTwin"
	ModeUpdateTwinIfMatchETag = "updateTwinIfMatchETag"
)

// BulkDevice is one ExportImportDevice of a bulk registry operation.
type BulkDevice struct {
	ID             string                 `json:"id"`
	ModuleID       string                 `json:"moduleId,omitempty"`
	ETag           string                 `json:"eTag,omitempty"`
	ImportMode     string                 `json:"importMode"`
	Status         string                 `json:"status,omitempty"`
	StatusReason   *string                `json:"statusReason,omitempty"`
	Authentication *Authentication        `json:"authentication,omitempty"`
	TwinETag       string                 `json:"twinETag,omitempty"`
	Tags           map[string]any         `json:"tags,omitempty"`
	Properties     *hubapi.TwinProperties `json:"properties,omitempty"`
	Capabilities   *Capabilities          `json:"capabilities,omitempty"`
}

// BulkError is one failed device of a bulk operation. errorCode is the numeric code (which
// amenzhinsky decodes as a number; C# reads either form) [inferred].
type BulkError struct {
	DeviceID    string `json:"deviceId"`
	ModuleID    string `json:"moduleId,omitempty"`
	ErrorCode   int    `json:"errorCode"`
	ErrorStatus string `json:"errorStatus"`
}

// BulkResult is the answer of a bulk registry operation.
type BulkResult struct {
	IsSuccessful bool        `json:"isSuccessful"`
	Errors       []BulkError `json:"errors"`
	Warnings     []any       `json:"warnings"`
}

// Bulk applies a bulk registry operation: each device on its own (one transaction each; a
// failure does not undo the others [inferred: the hub reports per-device errors next to
// successes]). Whole-request problems (more than MaxBulkDevices, an unknown import mode, the
// same id twice) fail the request before anything is applied. Semantics per mode follow the
// import/export guide: update and updateIfMatchETag create a missing device; delete of a
// missing device is an error; updateTwin merge-patches tags and desired [inferred].
func (r *Registry) Bulk(devs []BulkDevice) (BulkResult, error) {
	if len(devs) == 0 {
		return BulkResult{}, huberr.New(huberr.ArgumentNull, "The bulk operation has no devices.")
	}
	if len(devs) > MaxBulkDevices {
		return BulkResult{}, huberr.New(huberr.ArgumentInvalid, "A bulk registry operation may carry at most %d devices, not %d.", MaxBulkDevices, len(devs))
	}
	seen := map[string]bool{}
	modes := make([]string, len(devs))
	for i, d := range devs {
		if d.ModuleID != "" {
			return BulkResult{}, huberr.New(huberr.ArgumentInvalid, "Device %s: bulk operations on modules are not supported by the local hub.", d.ID)
		}
		m, ok := canonicalMode(d.ImportMode)
		if !ok {
			return BulkResult{}, huberr.New(huberr.ArgumentInvalid, "Device %s: unknown importMode %q.", d.ID, d.ImportMode)
		}
		modes[i] = m
		if seen[d.ID] {
			return BulkResult{}, huberr.New(DeviceDefinedMultipleTimes, "The device %s is defined more than once in the bulk operation.", d.ID)
		}
		seen[d.ID] = true
	}
	res := BulkResult{IsSuccessful: true, Errors: []BulkError{}, Warnings: []any{}}
	for i, d := range devs {
		if err := r.bulkOne(modes[i], d); err != nil {
			he := huberr.As(err)
			res.IsSuccessful = false
			res.Errors = append(res.Errors, BulkError{DeviceID: d.ID, ErrorCode: int(he.Code), ErrorStatus: he.Msg})
		}
	}
	return res, nil
}

func canonicalMode(m string) (string, bool) {
	for _, c := range []string{ModeCreate, ModeUpdate, ModeUpdateIfMatchETag, ModeDelete, ModeDeleteIfMatchETag, ModeUpdateTwin, ModeUpdateTwinIfMatchETag} {
		if strings.EqualFold(m, c) {
			return c, true
		}
	}
	return "", false
}

func (r *Registry) bulkOne(mode string, d BulkDevice) error {
	dev := Device{DeviceID: d.ID, Status: d.Status, StatusReason: d.StatusReason}
	if d.Authentication != nil {
		dev.Authentication = *d.Authentication
	}
	if d.Capabilities != nil {
		dev.Capabilities = *d.Capabilities
	}
	twin := hubapi.TwinPatch{Tags: d.Tags}
	if d.Properties != nil && d.Properties.Desired != nil {
		twin.Properties = &hubapi.TwinProperties{Desired: d.Properties.Desired}
	}
	hasTwin := len(twin.Tags) > 0 || twin.Properties != nil
	etagOr := func(cond bool, etag string) string {
		if cond && strings.TrimSpace(etag) != "" {
			return etag
		}
		return "*"
	}
	switch mode {
	case ModeCreate, ModeUpdate, ModeUpdateIfMatchETag:
		var err error
		if mode == ModeCreate || !r.Has(d.ID) {
			if mode == ModeUpdateIfMatchETag && strings.TrimSpace(d.ETag) != "" && !r.Has(d.ID) {
				// An etag for a device that does not exist cannot match.
				return notFound(d.ID)
			}
			_, err = r.CreateOrUpdateDevice(dev, "")
		} else {
			_, err = r.CreateOrUpdateDevice(dev, etagOr(mode == ModeUpdateIfMatchETag, d.ETag))
		}
		if err != nil || !hasTwin {
			return err
		}
		_, err = r.UpdateTwin(d.ID, twin, "*")
		return err
	case ModeDelete, ModeDeleteIfMatchETag:
		return r.DeleteDevice(d.ID, etagOr(mode == ModeDeleteIfMatchETag, d.ETag))
	default: // updateTwin, updateTwinIfMatchETag
		_, err := r.UpdateTwin(d.ID, twin, etagOr(mode == ModeUpdateTwinIfMatchETag, d.TwinETag))
		return err
	}
}

// DeviceStats are the registry statistics of GET /statistics/devices.
type DeviceStats struct {
	TotalDeviceCount    int `json:"totalDeviceCount"`
	EnabledDeviceCount  int `json:"enabledDeviceCount"`
	DisabledDeviceCount int `json:"disabledDeviceCount"`
}

// Stats counts devices by status (modules are not devices and are not counted).
func (r *Registry) Stats() DeviceStats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := DeviceStats{TotalDeviceCount: len(r.order)}
	for _, e := range r.byID {
		if e.dev.Status == "disabled" {
			s.DisabledDeviceCount++
		}
	}
	s.EnabledDeviceCount = s.TotalDeviceCount - s.DisabledDeviceCount
	return s
}

// ConnectedDeviceCount is how many devices are connected now (GET /statistics/service).
func (r *Registry) ConnectedDeviceCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	n := 0
	for _, e := range r.byID {
		if e.vol.connected.Load() {
			n++
		}
	}
	return n
}
