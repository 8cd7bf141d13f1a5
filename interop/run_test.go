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

	"github.com/adhocd/adhocd/server/servertest"
)

// python is Debian's interpreter, which sees Debian's python3-* packages.
const python = "/usr/bin/python3"

// requireSlixmpp skips the test when slixmpp cannot be imported, or fails it
// when running under CI, where a skip would hide a broken setup.
func requireSlixmpp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", "from slixmpp import ClientXMPP").CombinedOutput()
	if err == nil {
		return
	}
	msg := "slixmpp unavailable (" + python + " -c 'from slixmpp import ClientXMPP': " + err.Error() + ": " +
		strings.TrimSpace(string(out)) + "); install Debian's python3-slixmpp"
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

// script is an interop script running under python whose stdout the test
// reads line by line while it runs.
type script struct {
	t      *testing.T
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
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join("testdata", name)}, args...)...)
	// UTF-8 argv and stdout whatever the locale: the values are not ASCII.
	cmd.Env = append(os.Environ(), "PYTHONUTF8=1")
	cmd.WaitDelay = 5 * time.Second
	s := &script{t: t, ctx: ctx, cmd: cmd, lines: make(chan string, 256)}
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
		s.t.Logf("slixmpp stdout:\n%s", s.stdout.String())
		if e := s.stderr.String(); e != "" {
			s.t.Logf("slixmpp stderr:\n%s", e)
		}
		s.restLines = rest
	})
	return s.err
}

// finish waits for the script and fails the test if it failed; it returns
// the lines next did not read.
func (s *script) finish() []string {
	s.t.Helper()
	if err := s.wait(); err != nil {
		s.t.Fatalf("slixmpp script: %v", err)
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

// randomBody returns a message body no run has sent before.
func randomBody(t *testing.T) string {
	t.Helper()
	return "interop " + randomHex(t, 12) + " ✓"
}
