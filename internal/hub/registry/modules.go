package registry

import (
	"encoding/json"
	"slices"
	"strings"

	"go.etcd.io/bbolt"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// Module is a module identity as GET/PUT /devices/{id}/modules/{mid} carry it.
type Module struct {
	ModuleID                   string         `json:"moduleId"`
	ManagedBy                  string         `json:"managedBy"`
	DeviceID                   string         `json:"deviceId"`
	GenerationID               string         `json:"generationId"`
	ETag                       string         `json:"etag"`
	ConnectionState            string         `json:"connectionState"`
	ConnectionStateUpdatedTime string         `json:"connectionStateUpdatedTime"`
	LastActivityTime           string         `json:"lastActivityTime"`
	CloudToDeviceMessageCount  int            `json:"cloudToDeviceMessageCount"`
	Authentication             Authentication `json:"authentication"`
}

// moduleRecord is the persisted module ("modules" bucket, key "deviceId/moduleId"): identity
// and twin state in one value.
type moduleRecord struct {
	Module
	ETagN int64     `json:"etagN"`
	Twin  twinState `json:"twin"`
}

// moduleKey is the key of a module in memory and in the store. Module ids cannot contain '/',
// so the modules of one device sort together.
func moduleKey(deviceID, moduleID string) string { return deviceID + "/" + moduleID }

func moduleNotFound(deviceID, moduleID string) error {
	return huberr.New(huberr.ModuleNotFound, "Module %s on device %s not found.", moduleID, deviceID)
}

func moduleOf(e *entry) Module {
	return Module{
		ModuleID:                   e.mod.ModuleID,
		ManagedBy:                  e.mod.ManagedBy,
		DeviceID:                   e.dev.DeviceID,
		GenerationID:               e.dev.GenerationID,
		ETag:                       e.dev.ETag,
		ConnectionState:            e.connectionState(),
		ConnectionStateUpdatedTime: formatNanos(e.vol.connAt.Load()),
		LastActivityTime:           formatNanos(e.vol.activeAt.Load()),
		CloudToDeviceMessageCount:  e.dev.CloudToDeviceMessageCount,
		Authentication:             e.dev.Authentication,
	}
}

func moduleRecordOf(e *entry) moduleRecord {
	return moduleRecord{Module: moduleOf(e), ETagN: e.devN, Twin: e.tw.record()}
}

func decodeModule(v []byte, times timeCache) (*entry, error) {
	var rec moduleRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, err
	}
	e := &entry{
		dev: Device{
			DeviceID:                  rec.DeviceID,
			GenerationID:              rec.GenerationID,
			ETag:                      rec.ETag,
			Status:                    "enabled",
			StatusUpdatedTime:         zeroTime,
			CloudToDeviceMessageCount: rec.CloudToDeviceMessageCount,
			Authentication:            rec.Authentication,
		},
		devN: rec.ETagN,
		mod:  &moduleInfo{ModuleID: rec.ModuleID, ManagedBy: rec.ManagedBy},
		// Modules have no sessions on the local hub: Disconnected, times as stored.
		vol: volatileOf(Device{ConnectionStateUpdatedTime: rec.ConnectionStateUpdatedTime, LastActivityTime: rec.LastActivityTime}, times),
		tw:  twinOf(&rec.Twin, times),
	}
	return e, nil
}

// moduleRange is the index range of a device's modules in r.modKeys; callers hold r.mu.
func (r *Registry) moduleRange(deviceID string) (lo, hi int) {
	prefix := deviceID + "/"
	lo, _ = slices.BinarySearch(r.modKeys, prefix)
	hi = lo
	for hi < len(r.modKeys) && strings.HasPrefix(r.modKeys[hi], prefix) {
		hi++
	}
	return lo, hi
}

// removeLocked drops a device and its modules from memory; callers hold r.mu (write).
func (r *Registry) removeLocked(deviceID string) {
	r.gen.Add(1)
	delete(r.byID, deviceID)
	if i, ok := r.position(deviceID); ok {
		r.order = slices.Delete(r.order, i, i+1)
	}
	lo, hi := r.moduleRange(deviceID)
	for _, k := range r.modKeys[lo:hi] {
		delete(r.mods, k)
	}
	r.modKeys = slices.Delete(r.modKeys, lo, hi)
}

// CreateOrUpdateModule is PUT /devices/{id}/modules/{mid}. Without If-Match it creates the
// module (404001 if the device is unknown, 409301 ModuleAlreadyExistsOnDevice if it exists);
// with If-Match ("*" or the module's etag) it updates it (404010 if missing, 412001 on a
// mismatch). Writable: the symmetric keys (empty = generate on create, keep on update) and
// managedBy.
func (r *Registry) CreateOrUpdateModule(m Module, ifMatch string) (Module, error) {
	if err := ValidateDeviceID(m.ModuleID); err != nil {
		return Module{}, huberr.New(huberr.ArgumentInvalid, "The module id is not valid: %s", strings.Replace(huberr.As(err).Msg, "device id", "module id", 1))
	}
	if strings.HasPrefix(m.ModuleID, "$") {
		// $edgeAgent and $edgeHub are created by the hub for edge devices only.
		return Module{}, huberr.New(huberr.ArgumentInvalid, "Module ids starting with '$' are reserved for system modules.")
	}
	if m.Authentication.Type != "" && m.Authentication.Type != "sas" {
		return Module{}, huberr.New(huberr.ArgumentInvalid, "The local hub supports only authentication type 'sas', not %q.", m.Authentication.Type)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byID[m.DeviceID] == nil {
		return Module{}, notFound(m.DeviceID)
	}
	key := moduleKey(m.DeviceID, m.ModuleID)
	old := r.mods[key]
	if strings.TrimSpace(ifMatch) == "" {
		if old != nil {
			return Module{}, huberr.New(ModuleAlreadyExistsOnDevice, "A module with ID '%s' already exists on device '%s'.", m.ModuleID, m.DeviceID)
		}
		sk := m.Authentication.SymmetricKey
		e, err := r.newEntry(m.DeviceID, "", sk.PrimaryKey, sk.SecondaryKey, r.nowNanos())
		if err != nil {
			return Module{}, err
		}
		e.mod = &moduleInfo{ModuleID: m.ModuleID, ManagedBy: m.ManagedBy}
		if err := r.persist([]*entry{e}, true, true); err != nil {
			return Module{}, err
		}
		r.publish(e)
		return moduleOf(e), nil
	}
	if old == nil {
		return Module{}, moduleNotFound(m.DeviceID, m.ModuleID)
	}
	if want := parseIfMatch(ifMatch); want != "" && want != old.dev.ETag {
		return Module{}, preconditionFailed()
	}
	e := old.clone()
	e.devN++
	e.dev.ETag = deviceETag(e.devN)
	e.mod = &moduleInfo{ModuleID: m.ModuleID, ManagedBy: m.ManagedBy}
	if sk := m.Authentication.SymmetricKey; sk.PrimaryKey != "" || sk.SecondaryKey != "" {
		if err := checkSymmetricKeys(sk, "module"); err != nil {
			return Module{}, err
		}
		e.dev.Authentication.SymmetricKey = sk
	}
	if err := r.persist([]*entry{e}, true, false); err != nil {
		return Module{}, err
	}
	r.publish(e)
	return moduleOf(e), nil
}

// GetModule returns a module identity (404001 unknown device, 404010 unknown module).
func (r *Registry) GetModule(deviceID, moduleID string) (Module, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, err := r.lookupLocked(deviceID, moduleID)
	if err != nil {
		return Module{}, err
	}
	return moduleOf(e), nil
}

// ListModules returns a device's modules in id order (404001 if the device is unknown).
func (r *Registry) ListModules(deviceID string) ([]Module, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.byID[deviceID] == nil {
		return nil, notFound(deviceID)
	}
	lo, hi := r.moduleRange(deviceID)
	out := make([]Module, 0, hi-lo)
	for _, k := range r.modKeys[lo:hi] {
		out = append(out, moduleOf(r.mods[k]))
	}
	return out, nil
}

// DeleteModule removes a module and its twin (If-Match as for updates).
func (r *Registry) DeleteModule(deviceID, moduleID, ifMatch string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, err := r.lookupLocked(deviceID, moduleID)
	if err != nil {
		return err
	}
	if want := parseIfMatch(ifMatch); want != "" && want != old.dev.ETag {
		return preconditionFailed()
	}
	key := moduleKey(deviceID, moduleID)
	if err := r.commit.writeSync(func(tx *bbolt.Tx) error { return tx.Bucket(bucketModules).Delete([]byte(key)) }); err != nil {
		return storeError(err)
	}
	delete(r.mods, key)
	r.gen.Add(1)
	if i, ok := slices.BinarySearch(r.modKeys, key); ok {
		r.modKeys = slices.Delete(r.modKeys, i, i+1)
	}
	return nil
}

// ModuleCount is the number of modules of all devices.
func (r *Registry) ModuleCount() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.modKeys)
}

// GetModuleTwin returns a copy of a module twin document (GET /twins/{id}/modules/{mid}).
func (r *Registry) GetModuleTwin(deviceID, moduleID string) (map[string]any, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, err := r.lookupLocked(deviceID, moduleID)
	if err != nil {
		return nil, err
	}
	return e.Map(), nil
}

// UpdateModuleTwin merge-patches a module twin's tags and desired properties, as UpdateTwin
// does for devices. Modules have no sessions on the local hub, so nobody is notified.
func (r *Registry) UpdateModuleTwin(deviceID, moduleID string, patch hubapi.TwinPatch, ifMatch string) (map[string]any, error) {
	return r.updateTwin(deviceID, moduleID, patch, ifMatch)
}

// ReplaceModuleTwin replaces a module twin's tags and desired properties.
func (r *Registry) ReplaceModuleTwin(deviceID, moduleID string, twin hubapi.TwinPatch, ifMatch string) (map[string]any, error) {
	return r.replaceTwin(deviceID, moduleID, twin, ifMatch)
}

// PatchModuleReported merge-patches a module twin's reported properties (the module side).
func (r *Registry) PatchModuleReported(deviceID, moduleID string, patch map[string]any) (int64, error) {
	return r.patchReported(deviceID, moduleID, patch)
}

// ForEachModuleTwin calls fn with every module twin document (deviceId, then moduleId order)
// until fn returns false, under the same rules as ForEachTwin.
func (r *Registry) ForEachModuleTwin(fn func(doc any) bool) {
	var batch []*entry
	after := ""
	for {
		batch = batch[:0]
		r.mu.RLock()
		i := 0
		if after != "" {
			i, _ = slices.BinarySearch(r.modKeys, after)
			if i < len(r.modKeys) && r.modKeys[i] == after {
				i++
			}
		}
		for ; i < len(r.modKeys) && len(batch) < forEachChunk; i++ {
			batch = append(batch, r.mods[r.modKeys[i]])
			after = r.modKeys[i]
		}
		r.mu.RUnlock()
		for _, d := range batch {
			if !fn(d) {
				return
			}
		}
		if len(batch) < forEachChunk {
			return
		}
	}
}
