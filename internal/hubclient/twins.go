package hubclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// These calls go through amenzhinsky/iothub's iotservice client (over this client's counting
// HTTP transport), as the project's design asks; queries and jobs are ours (query.go, jobs.go).

// GetTwin reads a device twin (GET /twins/{id}) as a JSON document (float64 numbers).
func (c *Client) GetTwin(ctx context.Context, deviceID string) (map[string]any, error) {
	t, err := c.svc.GetDeviceTwin(ctx, deviceID)
	if err != nil {
		return nil, fromService("twin.get", err)
	}
	return toDoc(t)
}

// UpdateTwin merge-patches a twin's tags and desired properties (PATCH /twins/{id}); a nil value
// removes a key. etag "" or "*" updates unconditionally; otherwise a stale etag fails with 412.
func (c *Client) UpdateTwin(ctx context.Context, deviceID string, patch hubapi.TwinPatch, etag string) (map[string]any, error) {
	t := &iotservice.Twin{DeviceID: deviceID, ETag: etag, Tags: patch.Tags}
	if etag == "" {
		t.ETag = "*"
	}
	if patch.Properties != nil {
		t.Properties = &iotservice.Properties{Desired: patch.Properties.Desired}
	}
	res, err := c.svc.UpdateDeviceTwin(ctx, t)
	if err != nil {
		return nil, fromService("twin.update", err)
	}
	return toDoc(res)
}

// CallMethod invokes a direct method on a device (POST /twins/{id}/methods). The payload must
// be a JSON object or null (iotservice's MethodCall carries payloads as objects), and the
// device's answer is returned as the hub gave it.
func (c *Client) CallMethod(ctx context.Context, deviceID string, m hubapi.CloudToDeviceMethod) (hubapi.CloudToDeviceMethodResult, error) {
	var payload map[string]any
	if len(m.Payload) > 0 {
		if err := json.Unmarshal(m.Payload, &payload); err != nil {
			return hubapi.CloudToDeviceMethodResult{}, errors.New("iot hub method.invoke: the payload must be a JSON object or null")
		}
	}
	if m.ResponseTimeoutInSeconds < 0 || m.ConnectTimeoutInSeconds < 0 {
		return hubapi.CloudToDeviceMethodResult{}, errors.New("iot hub method.invoke: timeouts must not be negative")
	}
	res, err := c.svc.CallDeviceMethod(ctx, deviceID, &iotservice.MethodCall{
		MethodName:      m.MethodName,
		ConnectTimeout:  uint(m.ConnectTimeoutInSeconds),
		ResponseTimeout: uint(m.ResponseTimeoutInSeconds),
		Payload:         payload,
	})
	if err != nil {
		return hubapi.CloudToDeviceMethodResult{}, fromService("method.invoke", err)
	}
	out := hubapi.CloudToDeviceMethodResult{Status: res.Status}
	if res.Payload != nil {
		if out.Payload, err = json.Marshal(res.Payload); err != nil {
			return out, fmt.Errorf("iot hub method.invoke: %w", err)
		}
	}
	return out, nil
}

// CreateDevice registers a device identity with generated SAS keys (PUT /devices/{id}).
func (c *Client) CreateDevice(ctx context.Context, deviceID string) error {
	_, err := c.svc.CreateDevice(ctx, &iotservice.Device{
		DeviceID:       deviceID,
		Authentication: &iotservice.Authentication{Type: iotservice.AuthSAS},
	})
	return fromService("device.put", err)
}

// DeviceExists reports whether a device identity exists (GET /devices/{id}).
func (c *Client) DeviceExists(ctx context.Context, deviceID string) (bool, error) {
	_, err := c.svc.GetDevice(ctx, deviceID)
	if err == nil {
		return true, nil
	}
	err = fromService("device.get", err)
	if IsStatus(err, 404) {
		return false, nil
	}
	return false, err
}

// DeviceKey returns a device identity's primary symmetric key (for printing its connection
// string on purpose, e.g. by `iotplan dev --device-connection-string`).
func (c *Client) DeviceKey(ctx context.Context, deviceID string) (string, error) {
	d, err := c.svc.GetDevice(ctx, deviceID)
	if err != nil {
		return "", fromService("device.get", err)
	}
	if d.Authentication == nil || d.Authentication.SymmetricKey == nil || d.Authentication.SymmetricKey.PrimaryKey == "" {
		return "", fmt.Errorf("device %q has no symmetric key", deviceID)
	}
	return d.Authentication.SymmetricKey.PrimaryKey, nil
}

// toDoc turns an iotservice value into a plain JSON document.
func toDoc(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}
