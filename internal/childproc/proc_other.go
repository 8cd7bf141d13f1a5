//go:build !linux

package childproc

import "syscall"

// dieWithParent does nothing where there is no parent-death signal: a
// child whose parent dies there keeps running.
func dieWithParent(*syscall.SysProcAttr) {}
