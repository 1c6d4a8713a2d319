package nodesdk

import "syscall"

// childProcAttr makes the kernel kill a node program if the test binary dies without running
// its cleanups (go test -timeout panics, SIGKILL), so no simDevice.js outlives the test.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
