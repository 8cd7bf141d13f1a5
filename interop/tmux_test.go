package interop_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file drives terminal XMPP clients (poezio, Profanity) the way their
// users run them: in a terminal, here a detached tmux session on a private
// socket, typed at with send-keys and read with capture-pane.

// clientUserName is the unprivileged account the terminal clients run as
// when the tests run as root (as CI does): poezio refuses to start as root.
const clientUserName = "adhocd-test"

// Terminal size of every client: wide enough that poezio's command list
// shows whole node names, tall enough that it shows every command at once.
const (
	termWidth  = 200
	termHeight = 60
)

// requireProgram skips the test when one of the programs is not installed,
// or fails it under CI, where a skip would hide a broken setup; pkg names the
// Debian package that provides them.
func requireProgram(t *testing.T, pkg string, programs ...string) {
	t.Helper()
	for _, p := range programs {
		if _, err := exec.LookPath(p); err != nil {
			msg := fmt.Sprintf("%s unavailable (%v); install Debian's %s", p, err, pkg)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// clientUser is who a terminal client runs as.
type clientUser struct {
	// runAs is the account name for runuser, or "" to run as the test
	// process itself (which is not root).
	runAs    string
	uid, gid int
}

var clientUserMu sync.Mutex

// terminalUser returns the account the clients run as: the test's own one
// unless it is root, in which case clientUserName, created on first use.
func terminalUser(t *testing.T) clientUser {
	t.Helper()
	if os.Geteuid() != 0 {
		return clientUser{uid: os.Getuid(), gid: os.Getgid()}
	}
	requireProgram(t, "util-linux", "runuser")
	clientUserMu.Lock()
	defer clientUserMu.Unlock()
	u, err := user.Lookup(clientUserName)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		addClientUser(t)
		u, err = user.Lookup(clientUserName)
	}
	if err != nil {
		t.Fatalf("look up %s: %v", clientUserName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return clientUser{runAs: clientUserName, uid: uid, gid: gid}
}

// addClientUser creates clientUserName, a system account with no home and
// no login shell.
func addClientUser(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "useradd", "--system", "--user-group",
		"--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
		clientUserName).CombinedOutput()
	// Exit status 9: another process created it in the meantime.
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 9) {
		t.Fatalf("useradd %s: %v: %s", clientUserName, err, out)
	}
}

// newHome makes an empty home folder for one client instance, outside the
// test's own temporary folder (which only root may enter), and removes it
// when the test ends.
func (u clientUser) newHome(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "adhocd-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	u.own(t, dir)
	return dir
}

// own gives path and everything under it to the client's account.
func (u clientUser) own(t *testing.T, path string) {
	t.Helper()
	if u.runAs == "" {
		return
	}
	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
	if err != nil {
		t.Fatalf("chown %s: %v", path, err)
	}
}

// clientEnv is the whole environment of a client whose home is home: its own
// XDG folders, a UTF-8 locale and tmux's terminal type, and nothing of the
// test's environment.
func clientEnv(home string) []string {
	return []string{
		"HOME=" + home,
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"TERM=tmux-256color",
		"LANG=C.UTF-8",
		"LC_ALL=C.UTF-8",
		"XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local", "share"),
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"XDG_STATE_HOME=" + filepath.Join(home, ".local", "state"),
	}
}

// terminal is one program running in a detached tmux session on a private
// tmux server.
type terminal struct {
	t      *testing.T
	name   string // what the logs call it
	socket string // tmux -L
	// serverPID is the tmux server's; panePID the client's process group
	// (the pane's first process leads its own session).
	serverPID, panePID int
	// socketPath is the server's socket file, which tmux leaves behind.
	socketPath string
	// shown is set once a failure has logged the screen.
	shown bool
}

// startTerminal runs argv as u, with home as its home folder, in a new tmux
// server of its own. When the test ends the program and the server are
// stopped by their PIDs, and if the test failed the last screen is logged.
func startTerminal(t *testing.T, name string, u clientUser, home string, argv ...string) *terminal {
	t.Helper()
	requireProgram(t, "tmux", "tmux")
	term := &terminal{t: t, name: name, socket: "adhocd-" + randomHex(t, 6)}
	// remain-on-exit keeps the screen of a client that exited, so that the
	// test can still show why.
	conf := filepath.Join(t.TempDir(), "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\nset -g history-limit 10000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := append([]string{"env", "-i"}, clientEnv(home)...)
	cmd = append(cmd, argv...)
	if u.runAs != "" {
		cmd = append([]string{"runuser", "-u", u.runAs, "--"}, cmd...)
	}
	args := []string{"-f", conf, "new-session", "-d", "-s", "main",
		"-x", strconv.Itoa(termWidth), "-y", strconv.Itoa(termHeight)}
	if _, err := term.tmux(append(args, cmd...)...); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	t.Cleanup(term.stop)
	out, err := term.tmux("display-message", "-p", "-t", "main", "#{pid} #{pane_pid} #{socket_path}")
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if _, err := fmt.Sscan(out, &term.serverPID, &term.panePID, &term.socketPath); err != nil {
		t.Fatalf("%s: tmux PIDs %q: %v", name, out, err)
	}
	return term
}

// tmux runs one tmux command against the terminal's server and returns its
// standard output.
func (term *terminal) tmux(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tmux", append([]string{"-u", "-L", term.socket}, args...)...)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TMUX=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// keys sends tmux key names (Enter, Down, C-y) to the program, in order.
func (term *terminal) keys(keys ...string) {
	term.t.Helper()
	for _, k := range keys {
		if _, err := term.tmux("send-keys", "-t", "main", k); err != nil {
			term.fail("send %s: %v", k, err)
		}
	}
}

// typeText types s as it is, one character after the other.
func (term *terminal) typeText(s string) {
	term.t.Helper()
	if _, err := term.tmux("send-keys", "-t", "main", "-l", s); err != nil {
		term.fail("type %q: %v", s, err)
	}
}

// enter types line, waits until the screen shows it, and presses Enter.
func (term *terminal) enter(line string) {
	term.t.Helper()
	term.typeText(line)
	term.waitFor(line, 10*time.Second)
	term.keys("Enter")
}

// screen is what the terminal shows now, wrapped lines joined.
func (term *terminal) screen() string {
	term.t.Helper()
	out, err := term.tmux("capture-pane", "-p", "-J", "-t", "main")
	if err != nil {
		term.fail("capture: %v", err)
	}
	return out
}

// styledScreen is screen with its colours and attributes as escape
// sequences, where a highlighted line differs from a plain one, followed by
// the cursor's position, which moves when a field's edit begins.
func (term *terminal) styledScreen() string {
	term.t.Helper()
	out, err := term.tmux("capture-pane", "-p", "-e", "-J", "-t", "main")
	if err != nil {
		term.fail("capture: %v", err)
	}
	cursor, err := term.tmux("display-message", "-p", "-t", "main", "#{cursor_x},#{cursor_y}")
	if err != nil {
		term.fail("cursor: %v", err)
	}
	return out + "\ncursor " + cursor
}

// waitStyled polls styledScreen every 100 ms until ok accepts it; the test
// fails, showing the screen, after timeout.
func (term *terminal) waitStyled(what string, timeout time.Duration, ok func(styled string) bool) {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok(term.styledScreen()) {
		if time.Now().After(deadline) {
			term.fail("waited %s for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFor waits until the screen shows text and returns the screen; the test
// fails, showing the screen, if it does not within timeout.
func (term *terminal) waitFor(text string, timeout time.Duration) string {
	term.t.Helper()
	return term.waitUntil("the screen to show "+strconv.Quote(text), timeout, func(s string) bool {
		return strings.Contains(s, text)
	})
}

// waitUntil polls the screen every 100 ms until ok accepts it and returns
// that screen; the test fails, showing the screen, after timeout.
func (term *terminal) waitUntil(what string, timeout time.Duration, ok func(screen string) bool) string {
	term.t.Helper()
	s, found := term.poll(timeout, ok)
	if !found {
		term.fail("waited %s for %s", timeout, what)
	}
	return s
}

// poll is waitUntil that reports a timeout instead of failing.
func (term *terminal) poll(timeout time.Duration, ok func(screen string) bool) (string, bool) {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := term.screen()
		if ok(s) {
			return s, true
		}
		if time.Now().After(deadline) {
			return s, false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fail ends the test with the screen as it is now.
func (term *terminal) fail(format string, args ...any) {
	term.t.Helper()
	out, err := term.tmux("capture-pane", "-p", "-J", "-t", "main")
	if err != nil {
		out = "(no screen: " + err.Error() + ")"
	}
	term.shown = true
	term.t.Fatalf("%s: %s; its screen:\n%s", term.name, fmt.Sprintf(format, args...), trimScreen(out))
}

// trimScreen drops the blank lines at the end of a screen and the trailing
// blanks of each line.
func trimScreen(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

// stop logs the last screen if the test failed and no failure showed it, then ends the program (TERM,
// then KILL, to its process group) and the tmux server, by their PIDs.
func (term *terminal) stop() {
	if term.t.Failed() && !term.shown {
		if out, err := term.tmux("capture-pane", "-p", "-J", "-t", "main"); err == nil {
			term.t.Logf("%s: last screen:\n%s", term.name, trimScreen(out))
		}
	}
	if term.panePID > 0 {
		stopGroup(term.panePID, 3*time.Second)
	}
	_, _ = term.tmux("kill-server")
	if term.serverPID > 0 && !waitExit(term.serverPID, 3*time.Second) {
		_ = syscall.Kill(term.serverPID, syscall.SIGKILL)
		waitExit(term.serverPID, 3*time.Second)
	}
	if term.socketPath != "" {
		_ = os.Remove(term.socketPath)
	}
}

// stopGroup sends SIGTERM to the process group led by pid and SIGKILL if
// its leader is still there after grace.
func stopGroup(pid int, grace time.Duration) {
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil {
		return
	}
	if !waitExit(pid, grace) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		waitExit(pid, grace)
	}
}

// waitExit reports whether process pid ended (or is a zombie) within
// timeout. The processes here are the tmux server's children, so the test
// cannot wait for them.
func waitExit(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !running(pid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// running reports whether pid is a live process, not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] != 'Z'
}
