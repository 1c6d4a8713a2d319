package sim

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
)

func TestDefaultFleetIsExamplesFleet(t *testing.T) {
	f := DefaultFleet()
	if f.Size() != 301 || f.Groups[0].ID(0) != "myDeviceId" {
		t.Fatalf("size %d, first %q", f.Size(), f.Groups[0].ID(0))
	}
	// The documented shape: myDeviceId answers lockDoor 200; doors drift in the ways the
	// header comment promises; a few offline, a few failing lockDoor.
	my := f.Groups[0]
	if len(my.Methods) != 1 || my.Methods[0].Name != "lockDoor" || my.Methods[0].Status != 200 || my.OfflineDevices() != nil {
		t.Fatalf("myDeviceId = %+v", my)
	}
	offline, failing := 0, 0
	kinds := map[string]int{}
	for _, g := range f.Groups[1:] {
		for _, o := range g.OfflineDevices() {
			if o {
				offline++
			}
		}
		for _, m := range g.Methods {
			for _, x := range g.FailingDevices(m) {
				if x {
					failing++
				}
			}
		}
		for i := range g.Count {
			s, err := g.Seed(i)
			if err != nil {
				t.Fatal(err)
			}
			switch fl := s.Desired["floor"].(type) {
			case string:
				kinds["string floor"]++
			case float64:
				kinds["number floor"]++
			case nil:
				kinds["no floor"]++
			default:
				t.Fatalf("floor %T", fl)
			}
			if s.Desired["building"] != s.Tags["building"] {
				kinds["stale building"]++
			}
		}
	}
	if offline != 6 || failing != 6 {
		t.Errorf("offline=%d failing=%d, want 6 and 6", offline, failing)
	}
	want := map[string]int{"string floor": 20, "number floor": 270, "no floor": 10, "stale building": 30}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%s: %d devices, want %d (%v)", k, kinds[k], n, kinds)
		}
	}
}

func TestParseFleetValid(t *testing.T) {
	src := `
device "solo" {
  tags    = { kind = "gateway" }
  offline = true
  reported_echo_delay = "off"
  method "reboot" {
    status  = 202
    payload = { rebooting = true, in = 5 }
    latency = "10ms"
  }
}
group "sensors" {
  count    = 12
  id       = "s-%03d"
  tags     = { kind = "sensor", zone = "z${index % 4}", me = id }
  desired  = { interval = 10 * (index + 1) }
  offline_fraction    = 0.25
  reported_echo_delay = "2s"
  method "ping" {
    latency          = "5ms..15ms"
    failure_fraction = 0.5
    failure_status   = 503
    respond          = true
  }
  method "hang" { respond = false }
}
`
	f, diags := ParseFleet("fleet.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if len(f.Groups) != 2 || f.Size() != 13 {
		t.Fatalf("groups=%d size=%d", len(f.Groups), f.Size())
	}
	solo, sensors := f.Groups[0], f.Groups[1]
	if !solo.Single || !solo.Offline || solo.Echo || len(solo.OfflineDevices()) != 1 {
		t.Errorf("solo = %+v", solo)
	}
	m := solo.Methods[0]
	if m.Status != 202 || string(m.Payload) != `{"in":5,"rebooting":true}` || m.LatencyMin != 10*time.Millisecond || m.LatencyMax != m.LatencyMin {
		t.Errorf("reboot = %+v payload %s", m, m.Payload)
	}
	if sensors.ID(0) != "s-000" || sensors.ID(11) != "s-011" || sensors.EchoDelay != 2*time.Second || !sensors.Echo {
		t.Errorf("sensors = %+v", sensors)
	}
	s, err := sensors.Seed(6)
	if err != nil {
		t.Fatal(err)
	}
	if s.DeviceID != "s-006" || s.Tags["zone"] != "z2" || s.Tags["me"] != "s-006" || s.Desired["interval"] != 70.0 || s.Reported != nil {
		t.Errorf("seed 6 = %+v", s)
	}
	ping, hang := sensors.Methods[0], sensors.Methods[1]
	if ping.Status != 200 || string(ping.Payload) != "null" || ping.FailureStatus != 503 || ping.LatencyMin != 5*time.Millisecond || ping.LatencyMax != 15*time.Millisecond {
		t.Errorf("ping = %+v", ping)
	}
	if hang.Respond || !ping.Respond {
		t.Errorf("respond: ping %v hang %v", ping.Respond, hang.Respond)
	}
	count := func(b []bool) (n int) {
		for _, x := range b {
			if x {
				n++
			}
		}
		return n
	}
	if n := count(sensors.OfflineDevices()); n != 3 {
		t.Errorf("offline = %d, want exactly 3 of 12", n)
	}
	if n := count(sensors.FailingDevices(ping)); n != 6 {
		t.Errorf("failing = %d, want exactly 6 of 12", n)
	}
}

func TestParseFleetDeterministic(t *testing.T) {
	src := []byte(`group "g" {
  count = 1000
  id = "dev-%d"
  offline_fraction = 0.1
  method "m" {
    latency = "0s..1s"
    failure_fraction = 0.1
  }
}`)
	f1, d1 := ParseFleet("a.hcl", src)
	f2, d2 := ParseFleet("b.hcl", src)
	if d1.HasErrors() || d2.HasErrors() {
		t.Fatal(d1, d2)
	}
	g1, g2 := f1.Groups[0], f2.Groups[0]
	o1, o2 := g1.OfflineDevices(), g2.OfflineDevices()
	fl1, fl2 := g1.FailingDevices(g1.Methods[0]), g2.FailingDevices(g2.Methods[0])
	same, overlap := 0, 0
	for i := range o1 {
		if o1[i] != o2[i] || fl1[i] != fl2[i] {
			t.Fatalf("device %d differs between two parses", i)
		}
		if o1[i] {
			same++
		}
		if o1[i] && fl1[i] {
			overlap++
		}
	}
	if same != 100 {
		t.Fatalf("offline = %d, want 100", same)
	}
	// Offline and failing picks use different salts: they are not the same devices.
	if overlap > 40 {
		t.Fatalf("offline and failing sets overlap on %d of 100 devices", overlap)
	}
	m := g1.Methods[0]
	seen := map[time.Duration]bool{}
	for call := int64(1); call <= 50; call++ {
		l := m.Latency("dev-1", call)
		if l != g2.Methods[0].Latency("dev-1", call) || l < 0 || l > time.Second {
			t.Fatalf("latency %v not reproducible or out of range", l)
		}
		seen[l] = true
	}
	if len(seen) < 40 {
		t.Fatalf("latencies do not vary: %d distinct of 50", len(seen))
	}
}

func TestParseFleetInvalid(t *testing.T) {
	cases := []struct {
		name, src, summary string
		line, col          int
	}{
		{"syntax", "group \"g\" {\n  count = \n}", "Invalid expression", 2, 11},
		{"unknown block", "gadget \"x\" {}", "Unsupported block type", 1, 1},
		{"unknown attr", "device \"d\" {\n  colour = 1\n}", "Unsupported argument", 2, 3},
		{"missing count", "group \"g\" {\n  id = \"g-%d\"\n}", "Missing required argument", 1, 11},
		{"bad count", "group \"g\" {\n  count = 1.5\n  id = \"g-%d\"\n}", "Invalid number", 2, 11},
		{"no verb", "group \"g\" {\n  count = 3\n  id = \"same\"\n}", "Invalid id pattern", 3, 8},
		{"bad device id", "device \"a b\" {}", "Invalid device id", 1, 8},
		{"duplicate id", "device \"d-1\" {}\ngroup \"g\" {\n  count = 2\n  id = \"d-%d\"\n}", "Duplicate device id", 2, 1},
		{"duplicate method", "device \"d\" {\n  method \"m\" {}\n  method \"m\" {}\n}", "Duplicate method block", 3, 10},
		{"fraction", "group \"g\" {\n  count = 2\n  id = \"g-%d\"\n  offline_fraction = 2\n}", "Invalid fraction", 4, 22},
		{"latency", "device \"d\" {\n  method \"m\" {\n    latency = \"fast\"\n  }\n}", "Invalid latency", 3, 15},
		{"echo", "device \"d\" {\n  reported_echo_delay = \"soon\"\n}", "Invalid reported_echo_delay", 2, 25},
		{"not object", "device \"d\" {\n  tags = \"x\"\n}", "Object required", 2, 10},
		{"index in static", "group \"g\" {\n  count = index\n  id = \"g-%d\"\n}", "Variables not allowed", 2, 11},
		// 1/0 is +Inf in HCL, which JSON cannot carry: caught on the group's last device.
		{"bad mode", "device \"d\" {\n  mode = \"amqp\"\n}", "Invalid mode", 2, 10},
		{"too many mqtt", "group \"g\" {\n  count = 20001\n  id = \"g-%d\"\n  mode = \"mqtt\"\n}", "Too many MQTT devices", 1, 1},
		{"churn no interval", "device \"d\" {\n  churn {\n  }\n}", "Missing required argument", 2, 9},
		{"churn interval", "device \"d\" {\n  churn {\n    interval = \"10ms\"\n  }\n}", "Invalid churn interval", 3, 16},
		{"churn downtime", "device \"d\" {\n  churn {\n    interval = \"1m\"\n    downtime = \"2s..1s\"\n  }\n}", "Invalid churn downtime", 4, 16},
		{"churn fraction", "device \"d\" {\n  churn {\n    interval = \"1m\"\n    fraction = -1\n  }\n}", "Invalid fraction", 4, 16},
		{"two churns", "device \"d\" {\n  churn {\n    interval = \"1m\"\n  }\n  churn {\n    interval = \"1m\"\n  }\n}", "Duplicate churn block", 5, 3},
		{"bad expr per device", "group \"g\" {\n  count = 3\n  id = \"g-%d\"\n  tags = { x = 1 / (index - 2) }\n}", "Invalid value", 4, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, diags := ParseFleet("fleet.hcl", []byte(c.src))
			if !diags.HasErrors() || f != nil {
				t.Fatalf("no error; fleet %+v", f)
			}
			d := diags[0]
			if d.Summary != c.summary {
				t.Fatalf("summary %q (%s), want %q", d.Summary, d.Detail, c.summary)
			}
			if d.Subject == nil || d.Subject.Filename != "fleet.hcl" || d.Subject.Start.Line != c.line || d.Subject.Start.Column != c.col {
				t.Fatalf("subject %v, want fleet.hcl:%d:%d", d.Subject, c.line, c.col)
			}
			// Rendered like Terraform, with the source line.
			var buf bytes.Buffer
			wr := hcl.NewDiagnosticTextWriter(&buf, map[string]*hcl.File{"fleet.hcl": {Bytes: []byte(c.src)}}, 100, false)
			if err := wr.WriteDiagnostic(d); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(buf.String(), fmt.Sprintf("on fleet.hcl line %d", c.line)) {
				t.Fatalf("rendered:\n%s", buf.String())
			}
		})
	}
}

func TestParseFleetModesAndChurn(t *testing.T) {
	f, diags := ParseFleet("fleet.hcl", []byte(`
group "mq" {
  count = 10
  id    = "mq-%02d"
  mode  = "mqtt"
  churn {
    interval = "1m..2m"
    downtime = "1s..3s"
    fraction = 0.3
  }
  method "m" {}
}
device "local" {
  mode = "in_process"
  churn { interval = "30s" }
}
`))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	mq, local := f.Groups[0], f.Groups[1]
	if mq.Mode != ModeMQTT || local.Mode != ModeInProcess {
		t.Fatalf("modes %q %q", mq.Mode, local.Mode)
	}
	c := mq.Churn
	if c == nil || c.IntervalMin != time.Minute || c.IntervalMax != 2*time.Minute || c.DowntimeMin != time.Second || c.DowntimeMax != 3*time.Second || c.Fraction != 0.3 {
		t.Fatalf("churn = %+v", c)
	}
	if lc := local.Churn; lc == nil || lc.IntervalMin != 30*time.Second || lc.IntervalMax != lc.IntervalMin || lc.DowntimeMin != time.Second || lc.Fraction != 1 {
		t.Fatalf("default churn = %+v", lc)
	}
	n := 0
	for _, x := range mq.ChurningDevices() {
		if x {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("%d churning devices, want exactly 3 of 10", n)
	}
	for cycle := uint64(1); cycle < 20; cycle++ {
		iv, dt := c.Interval("mq-01", cycle), c.Downtime("mq-01", cycle)
		if iv < time.Minute || iv > 2*time.Minute || dt < time.Second || dt > 3*time.Second || iv != c.Interval("mq-01", cycle) {
			t.Fatalf("cycle %d: interval %v downtime %v", cycle, iv, dt)
		}
	}
	if (&Group{}).ChurningDevices() != nil {
		t.Fatal("a group without churn has churning devices")
	}
}

func TestLoadFleetMissingFile(t *testing.T) {
	_, diags := LoadFleet(filepath.Join(t.TempDir(), "nope.hcl"))
	if !diags.HasErrors() || diags[0].Summary != "Cannot read fleet file" {
		t.Fatalf("diags = %v", diags)
	}
}

// TestFieldwiseEvaluation: an object constructor is evaluated field by field per device
// (constants once); the result is what evaluating the whole expression gives.
func TestFieldwiseEvaluation(t *testing.T) {
	f, diags := ParseFleet("fleet.hcl", []byte(`group "g" {
  count = 50
  id    = "g-%02d"
  tags = {
    kind     = "door"
    "quoted" = 1
    building = element(["41", "42", "43"], index)
    me       = id
    nested   = { floor = index % 5, fixed = [1, "a", true, null] }
    gone     = index % 2 == 0 ? null : "odd"
  }
  desired  = merge({ a = 1 }, { b = index })
  reported = { fw = "1.0", n = 10 * (index + 1) }
}`))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	g := f.Groups[0]
	if g.tags.fields == nil || g.reported.fields == nil || g.desired.fields != nil {
		t.Fatalf("field-wise: tags %v reported %v desired %v", g.tags.fields != nil, g.reported.fields != nil, g.desired.fields != nil)
	}
	for i := range 50 {
		sd, err := g.Seed(i)
		if err != nil {
			t.Fatal(err)
		}
		for name, pair := range map[string]struct {
			got  map[string]any
			expr *valueExpr
		}{"tags": {sd.Tags, g.tags}, "desired": {sd.Desired, g.desired}, "reported": {sd.Reported, g.reported}} {
			want, diags := evalObject(pair.expr.expr, deviceCtx(i, g.ID(i)))
			if diags.HasErrors() {
				t.Fatal(diags.Error())
			}
			if fmt.Sprint(pair.got) != fmt.Sprint(want) {
				t.Fatalf("device %d %s: %v, want %v", i, name, pair.got, want)
			}
		}
	}
	sd, _ := g.Seed(3)
	if sd.Tags["building"] != "41" || sd.Tags["me"] != "g-03" || sd.Tags["gone"] != "odd" || sd.Tags["quoted"] != 1.0 || sd.Reported["n"] != 40.0 {
		t.Fatalf("seed 3 = %+v", sd)
	}
}
