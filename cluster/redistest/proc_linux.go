package redistest

import "syscall"

// dieWithParent has the kernel kill the server when the thread that starts
// it ends (PR_SET_PDEATHSIG).
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
