//go:build !linux

package redistest

import "syscall"

// dieWithParent does nothing where there is no parent-death signal: a test
// binary that dies there leaves its server running.
func dieWithParent(*syscall.SysProcAttr) {}
