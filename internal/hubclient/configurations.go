package hubclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/iotplan/iotplan/internal/hubapi"
)

// maxConfigurations is how many configurations ListConfigurations asks for: a hub holds at most
// 100 (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-quotas-throttling, "Other
// limits").
const maxConfigurations = 100

// ListConfigurations reads the hub's automatic device management configurations
// (GET /configurations?top=100), one "configuration.list" call.
func (c *Client) ListConfigurations(ctx context.Context) ([]hubapi.Configuration, error) {
	var out []hubapi.Configuration
	params := url.Values{"top": {strconv.Itoa(maxConfigurations)}}
	_, err := c.do(ctx, request{kind: "configuration.list", method: http.MethodGet, path: "/configurations", params: params}, &out)
	return out, err
}
