package httpapi

import (
	"net/http"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// --- modules -----------------------------------------------------------------------------------

func (s *Server) listModules(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.opts.Registry.ListModules(r.PathValue("id"))
}

func (s *Server) getModule(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.opts.Registry.GetModule(r.PathValue("id"), r.PathValue("mid"))
}

func (s *Server) putModule(_ http.ResponseWriter, r *http.Request) (any, error) {
	id, mid := r.PathValue("id"), r.PathValue("mid")
	var m registry.Module
	if err := decodeBody(r, &m); err != nil {
		return nil, err
	}
	if m.DeviceID == "" {
		m.DeviceID = id
	}
	if m.ModuleID == "" {
		m.ModuleID = mid
	}
	if m.DeviceID != id || m.ModuleID != mid {
		return nil, huberr.New(huberr.ArgumentInvalid, "The deviceId/moduleId in the body (%s/%s) do not match the ones in the path (%s/%s).", m.DeviceID, m.ModuleID, id, mid)
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Registry.CreateOrUpdateModule(m, im)
}

func (s *Server) deleteModule(_ http.ResponseWriter, r *http.Request) (any, error) {
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return nil, s.opts.Registry.DeleteModule(r.PathValue("id"), r.PathValue("mid"), im)
}

func (s *Server) getModuleTwin(_ http.ResponseWriter, r *http.Request) (any, error) {
	return s.opts.Registry.GetModuleTwin(r.PathValue("id"), r.PathValue("mid"))
}

func (s *Server) patchModuleTwin(_ http.ResponseWriter, r *http.Request) (any, error) {
	var p hubapi.TwinPatch
	if err := decodeTwinBody(r, &p); err != nil {
		return nil, err
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Registry.UpdateModuleTwin(r.PathValue("id"), r.PathValue("mid"), p, im)
}

func (s *Server) putModuleTwin(_ http.ResponseWriter, r *http.Request) (any, error) {
	var p hubapi.TwinPatch
	if err := decodeTwinBody(r, &p); err != nil {
		return nil, err
	}
	im, err := ifMatch(r)
	if err != nil {
		return nil, err
	}
	return s.opts.Registry.ReplaceModuleTwin(r.PathValue("id"), r.PathValue("mid"), p, im)
}

// invokeModuleMethod validates the call like a device method and checks the module exists;
// modules have no sessions on the local hub (no module MQTT connections yet), so every call
// ends as the hub answers for an offline target: 404103 DeviceNotOnline.
func (s *Server) invokeModuleMethod(_ http.ResponseWriter, r *http.Request) (any, error) {
	id, mid := r.PathValue("id"), r.PathValue("mid")
	if _, err := parseMethod(r); err != nil {
		return nil, err
	}
	if _, err := s.opts.Registry.GetModule(id, mid); err != nil {
		he := huberr.As(err)
		return nil, huberr.NewJSON(he.Code, nil, "%s", he.Msg)
	}
	return nil, huberr.NewJSON(huberr.DeviceNotOnline, map[string]any{"timeout": "00:00:00"},
		"Timed out waiting for device to connect. (Module %s/%s: modules have no connections on the local hub.)", id, mid)
}

// --- bulk registry operation -------------------------------------------------------------------

// bulkDevices is POST /devices: 200 with {isSuccessful:true,...} when every device succeeded,
// else 400 with the same body shape listing the failed devices (what amenzhinsky's bulk
// calls decode; C# reads the body of both).
func (s *Server) bulkDevices(_ http.ResponseWriter, r *http.Request) (any, error) {
	var devs []registry.BulkDevice
	if err := decodeTwinBody(r, &devs); err != nil {
		return nil, err
	}
	res, err := s.opts.Registry.Bulk(devs)
	if err != nil {
		return nil, err
	}
	if !res.IsSuccessful {
		return statusBody{status: http.StatusBadRequest, body: res}, nil
	}
	return res, nil
}

// --- statistics --------------------------------------------------------------------------------

func (s *Server) deviceStats(_ http.ResponseWriter, _ *http.Request) (any, error) {
	return s.opts.Registry.Stats(), nil
}

func (s *Server) serviceStats(_ http.ResponseWriter, _ *http.Request) (any, error) {
	return map[string]int{"connectedDeviceCount": s.opts.Registry.ConnectedDeviceCount()}, nil
}
