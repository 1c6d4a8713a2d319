package mqttapi

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplan/iotplan/internal/hub/registry"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// Many devices at once: concurrent connects, one method call each in parallel, every answer
// routed to its caller. MQTTAPI_SCALE=N raises the device count (default 50).
func TestManyDevices(t *testing.T) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("MQTTAPI_SCALE")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(t)
	seed := make([]registry.SeedDevice, n)
	for i := range seed {
		seed[i].DeviceID = fmt.Sprintf("dev%05d", i)
	}
	if err := e.reg.Import(seed); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := seed[i].DeviceID
			key, _, err := e.reg.DeviceKeys(id)
			if err != nil {
				errs <- err
				return
			}
			var c paho.Client
			c, err = e.raw(id, nodeUsername(testHost, id), deviceToken(t, testHost, id, key, time.Now().Add(time.Hour)), false)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
				return
			}
			tok := c.Subscribe("$iothub/methods/POST/#", 0, func(c paho.Client, m paho.Message) {
				_, rid, _ := strings.Cut(m.Topic(), "?$rid=")
				c.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `{"id":"`+id+`"}`)
			})
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				errs <- fmt.Errorf("%s: subscribe: %v", id, tok.Error())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	connected := time.Since(start)
	waitFor(t, "all sessions", func() bool { return e.srv.Stats().Connected == int64(n) })

	start = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results := make(chan error, n)
	for i := range n {
		go func() {
			id := seed[i].DeviceID
			r, err := e.link.Invoke(ctx, id, hubapi.CloudToDeviceMethod{MethodName: "ping", ResponseTimeoutInSeconds: 30})
			if err == nil && (r.Status != 200 || string(r.Payload) != `{"id":"`+id+`"}`) {
				err = fmt.Errorf("%s answered %d %s", id, r.Status, r.Payload)
			}
			results <- err
		}()
	}
	for range n {
		if err := <-results; err != nil {
			t.Error(err)
		}
	}
	t.Logf("%d devices: connect+subscribe %v, %d parallel method calls %v", n, connected, n, time.Since(start))
}
