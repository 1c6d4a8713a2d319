package hub

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// The permission error on :443 (not reproducible as root) names the flag and the trade-off.
func TestExplainListenError(t *testing.T) {
	eacces := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}
	err := explainListenError(":443", eacces)
	for _, want := range []string{":443", "permission denied", "--https-port", "Azure's SDKs", "amenzhinsky", "host:port"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in: %v", want, err)
		}
	}
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	if err := explainListenError(":443", inUse); !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--https-port") {
		t.Errorf("in use: %v", err)
	}
	other := errors.New("boom")
	if err := explainListenError("x:1", other); !errors.Is(err, other) {
		t.Errorf("other: %v", err)
	}
}
