//go:build !linux

package nodesdk

import "syscall"

// childProcAttr: only Linux offers a parent-death signal; elsewhere t.Cleanup alone kills the
// node programs.
func childProcAttr() *syscall.SysProcAttr { return nil }
