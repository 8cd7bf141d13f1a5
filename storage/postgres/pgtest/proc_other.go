//go:build !linux

package pgtest

import "syscall"

// children is not known here: Kill ends the postmaster alone, and its
// backends end when they see it gone.
func children(int) []int { return nil }

// alive reports whether pid exists still.
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// isChild is never asked here: children knows none.
func isChild(int, int) bool { return false }
