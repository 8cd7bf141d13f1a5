package pgtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// children returns the processes whose parent is pid (the postmaster's
// backends and helpers, each in a session of its own).
func children(pid int) []int {
	var out []int
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ppid := stat(p); st != "" && ppid == pid {
			out = append(out, p)
		}
	}
	return out
}

// alive reports whether pid runs (a zombie does not count: it holds
// nothing).
func alive(pid int) bool {
	st, _ := stat(pid)
	return st != "" && st != "Z"
}

// stat returns the state and the parent of pid from /proc; "" when there
// is no such process.
func stat(pid int) (state string, ppid int) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ = strconv.Atoi(f[1])
	return f[0], ppid
}

// isChild reports whether pid is a child of parent still.
func isChild(pid, parent int) bool {
	st, ppid := stat(pid)
	return st != "" && ppid == parent
}
