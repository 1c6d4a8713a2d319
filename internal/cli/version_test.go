package cli

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestVersionJSON(t *testing.T) {
	r := iotplan(t, "version", "-json")
	var v map[string]string
	if err := json.Unmarshal([]byte(r.out), &v); err != nil || r.code != 0 {
		t.Fatalf("version -json: exit %d, %v\n%s", r.code, err, r.out)
	}
	want := map[string]string{"iotplan_version": iotplanVersion(), "go_version": runtime.Version(), "platform": runtime.GOOS + "_" + runtime.GOARCH}
	if len(v) != len(want) {
		t.Errorf("version -json = %v, want exactly the keys of %v", v, want)
	}
	for k, w := range want {
		if v[k] != w || w == "" {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
}

func TestVersionFromLdflags(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3" // what -ldflags "-X github.com/iotplan/iotplan/internal/cli.Version=v1.2.3" sets
	r := iotplan(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.out, "iotplan v1.2.3\n"+runtime.Version()+" on "+runtime.GOOS+"_"+runtime.GOARCH) {
		t.Errorf("version: exit %d\n%s", r.code, r.out)
	}
	Version = "dev" // not set at build time: Go's record of the module, or (devel)
	if v := iotplanVersion(); v == "" || v == "dev" {
		t.Errorf("iotplanVersion() = %q without -ldflags, want the module version or %q", v, develVersion)
	}
}
