package interop_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// python is Debian's interpreter, which sees Debian's python3-* packages.
const python = "/usr/bin/python3"

// requireSlixmpp skips the test when slixmpp cannot be imported, or fails it
// when running under CI, where a skip would hide a broken setup.
func requireSlixmpp(t *testing.T) {
	t.Helper()
	requirePython(t, "slixmpp", "from slixmpp import ClientXMPP", "python3-slixmpp")
}

// requireNbxmpp is requireSlixmpp for nbxmpp, Gajim's library, and the GLib
// bindings it runs on.
func requireNbxmpp(t *testing.T) {
	t.Helper()
	requirePython(t, "nbxmpp", "from gi.repository import GLib; from nbxmpp.client import Client", "python3-nbxmpp")
}

// requirePython skips the test when python cannot run stmt (the import of
// lib), or fails it when running under CI, where a skip would hide a broken
// setup; pkg is the Debian package that provides lib.
func requirePython(t *testing.T, lib, stmt, pkg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", stmt).CombinedOutput()
	if err == nil {
		return
	}
	msg := lib + " unavailable (" + python + " -c '" + stmt + "': " + err.Error() + ": " +
		strings.TrimSpace(string(out)) + "); install Debian's " + pkg
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// serverArgs are the flags every script takes to reach srv: its address
// and the self-signed certificate the script trusts alone.
func serverArgs(t *testing.T, srv *servertest.Server) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"--host", host,
		"--port", port,
		"--cafile", filepath.Join(srv.Dir, "selfsigned-cert.pem"),
	}
}

// script is an interop script (a Python or Node program) whose stdout the
// test reads line by line while it runs.
type script struct {
	t      *testing.T
	name   string // the script's file name, for the log
	ctx    context.Context
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr servertest.SyncBuffer
	stdout servertest.SyncBuffer
	// scanErr is why stdout could not be read to its end (a line too
	// long); it is set before lines is closed.
	scanErr error

	once sync.Once
	err  error
	// restLines are the lines next did not read, once wait returned.
	restLines []string
}

// startScript starts testdata/name with args; the process is killed when
// timeout has passed. Whatever happens, the script's stdin is closed, its
// output logged and the process waited for when the test ends.
func startScript(t *testing.T, timeout time.Duration, name string, args ...string) *script {
	t.Helper()
	// UTF-8 argv and stdout whatever the locale: the values are not ASCII.
	return startProgram(t, timeout, []string{"PYTHONUTF8=1"}, python, append([]string{filepath.Join("testdata", name)}, args...)...)
}

// startProgram is startScript for any interpreter: it runs prog with args
// (args[0] is the script) and env added to the test's environment.
func startProgram(t *testing.T, timeout time.Duration, env []string, prog string, args ...string) *script {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	name := filepath.Base(prog)
	if len(args) > 0 {
		name = filepath.Base(args[0])
	}
	s := &script{t: t, name: name, ctx: ctx, cmd: cmd, lines: make(chan string, 256)}
	cmd.Stderr = &s.stderr
	var err error
	if s.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			_, _ = s.stdout.Write([]byte(sc.Text() + "\n"))
			s.lines <- sc.Text()
		}
		if err := sc.Err(); err != nil {
			s.scanErr = err
			// Keep the script from blocking on a full pipe.
			_, _ = io.Copy(io.Discard, stdout)
		}
	}()
	t.Cleanup(func() { _ = s.wait() })
	return s
}

// runScript runs testdata/name with args to its end, killed when timeout
// has passed, and returns the lines it printed; it fails the test if the
// script failed.
func runScript(t *testing.T, timeout time.Duration, name string, args ...string) []string {
	t.Helper()
	return startScript(t, timeout, name, args...).finish()
}

// next returns the next line starting with prefix, skipping others, or ""
// and false if none came within timeout or before stdout closed.
func (s *script) next(prefix string, timeout time.Duration) (string, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case line, open := <-s.lines:
			if !open {
				return "", false
			}
			if strings.HasPrefix(line, prefix) {
				return line, true
			}
		case <-deadline:
			return "", false
		}
	}
}

// wait closes the script's stdin, reads the rest of its stdout and waits
// for it to exit; it logs what the script printed and keeps the lines next
// did not read in restLines. Only the first call waits.
func (s *script) wait() error {
	s.once.Do(func() {
		_ = s.stdin.Close()
		var rest []string
		for line := range s.lines {
			rest = append(rest, line)
		}
		s.err = s.cmd.Wait()
		if errors.Is(s.ctx.Err(), context.DeadlineExceeded) {
			s.err = errors.Join(errors.New("killed after the deadline"), s.err)
		}
		if s.scanErr != nil {
			s.err = errors.Join(s.err, fmt.Errorf("reading stdout: %w", s.scanErr))
		}
		// What the script printed is shown when the test fails, after
		// the test's own errors, which a long output would bury.
		stdout, stderr := s.stdout.String(), s.stderr.String()
		s.t.Cleanup(func() {
			if !s.t.Failed() && !testing.Verbose() {
				return
			}
			s.t.Logf("%s stdout:\n%s", s.name, stdout)
			if stderr != "" {
				s.t.Logf("%s stderr:\n%s", s.name, stderr)
			}
		})
		s.restLines = rest
	})
	return s.err
}

// finish waits for the script and fails the test if it failed; it returns
// the lines next did not read.
func (s *script) finish() []string {
	s.t.Helper()
	if err := s.wait(); err != nil {
		s.t.Fatalf("%s: %v", s.name, err)
	}
	return s.restLines
}

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// tempFile writes b to a file called name in a folder of the test's and
// returns its path.
func tempFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// randomBody returns a message body no run has sent before.
func randomBody(t *testing.T) string {
	t.Helper()
	return "interop " + randomHex(t, 12) + " ✓"
}
