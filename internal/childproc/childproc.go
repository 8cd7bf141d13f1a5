// Package childproc runs a server program (PostgreSQL, Redis) as a child
// that ends with the process that started it, for the tests and
// benchmarks that start their own servers on loopback (pgtest, redistest,
// bench/compare) and stop them by PID.
//
// Why by hand: os/exec starts a process, but nothing in the standard
// library or a well-kept module ties a child's life to its parent's. On
// Linux the parent-death signal (PR_SET_PDEATHSIG) does; it follows the
// thread that forked, not the process, so Start forks from a goroutine
// that keeps its thread locked for as long as the child runs. Elsewhere a
// child whose parent dies keeps running.
package childproc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Process is a running child.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
}

// Start starts cmd (its Stdout, Stderr, Env and SysProcAttr as the caller
// set them) so that the kernel kills it when the caller's process ends.
func Start(cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	dieWithParent(cmd.SysProcAttr)
	p := &Process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, after the
		// child.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(p.done)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Signal sends sig to the child.
func (p *Process) Signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// Stop sends sig and waits for the child to exit, killing it after grace.
func (p *Process) Stop(sig syscall.Signal, grace time.Duration) {
	p.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// WaitReady calls ready every interval until it returns nil; it fails
// when the child exits first or timeout passes (with ready's last error).
func (p *Process) WaitReady(timeout, interval time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		select {
		case <-p.done:
			return errors.New("the server exited")
		case <-time.After(interval):
		}
	}
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listens on now (a
// server started on it may still find it taken: callers try again).
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Log is a child's log file, opened for appending, with the offset where
// this run of the child begins.
type Log struct {
	*os.File
	path  string
	start int64
}

// OpenLog opens (creating) the log at path for one run of a child.
func OpenLog(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	start, _ := f.Seek(0, 2)
	return &Log{File: f, path: path, start: start}, nil
}

// Tail returns what this run wrote, for an error message.
func (l *Log) Tail() []byte {
	out, _ := os.ReadFile(l.path)
	if int64(len(out)) >= l.start {
		out = out[l.start:]
	}
	return bytes.TrimSpace(out)
}
