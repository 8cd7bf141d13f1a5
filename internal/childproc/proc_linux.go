package childproc

import "syscall"

// dieWithParent has the kernel kill the child when the thread that starts
// it ends (PR_SET_PDEATHSIG, which Go sets after changing the credentials:
// the change would clear it).
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
