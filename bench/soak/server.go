package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// server is one adhocd binary with its configuration and store, started,
// killed and restarted as a child process.
type server struct {
	bin, cfg, dataDir, logPath   string
	addr, metricsAddr, pprofAddr string
	cmd                          *exec.Cmd
	exited                       chan struct{}
	restarts                     int
}

// buildServer builds cmd/adhocd of the module rooted at root into dir.
func buildServer(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "adhocd")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/adhocd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("soak: go build ./cmd/adhocd: %w\n%s", err, out)
	}
	return bin, nil
}

// moduleRoot returns the folder of the go.mod that holds cmd/adhocd.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("soak: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("soak: run from inside the adhocd module (no go.mod found)")
	}
	root := filepath.Dir(mod)
	if _, err := os.Stat(filepath.Join(root, "cmd", "adhocd")); err != nil {
		return "", fmt.Errorf("soak: %s has no cmd/adhocd: %w", root, err)
	}
	return root, nil
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("soak: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// archiveMax is limits.mam.max_messages in the soak: every chat message is
// archived for both its accounts (XEP-0313), and with the default bound of
// 50,000 per account the flooder's and the pairs' archives fill for most of
// an hour, so the store grows, bounded, for the whole run. At 2,000 the
// bound is reached within the first minutes, and what the soak judges
// afterwards is whether the store levels off once old messages make room
// for new ones.
const archiveMax = 2000

// newServer writes the configuration of a server in dir: loopback, no TLS,
// PLAIN on the plain stream, the demo commands, metrics and pprof on
// loopback, and command sessions that expire after sessionTTL.
func newServer(bin, dir string, sessionTTL time.Duration) (*server, error) {
	s := &server{bin: bin, dataDir: filepath.Join(dir, "data"), cfg: filepath.Join(dir, "config.yaml"), logPath: filepath.Join(dir, "adhocd.log")}
	for _, a := range []*string{&s.addr, &s.metricsAddr, &s.pprofAddr} {
		var err error
		if *a, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	cfg := fmt.Sprintf(`domain: localhost
c2s:
  listen: %q
  require_tls: false
  allow_plain_without_tls: true
storage:
  path: %q
limits:
  max_connections_per_address: 2000
  max_auth_failures_per_address: 1000000
  mam:
    max_messages: %d
adhoc:
  demo_commands: true
  session_ttl: %s
  max_sessions_per_user: 2000
metrics:
  listen: %q
debug:
  pprof_listen: %q
log:
  level: warn
`, s.addr, s.dataDir, archiveMax, sessionTTL, s.metricsAddr, s.pprofAddr)
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("soak: write config: %w", err)
	}
	return s, nil
}

// addUser creates an account with `adhocd user add`: on the store while the
// server is down, through its control socket while it runs.
func (s *server) addUser(ctx context.Context, user, password string) error {
	cmd := exec.CommandContext(ctx, s.bin, "user", "add", user+"@localhost", "--config", s.cfg)
	cmd.Stdin = strings.NewReader(password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("soak: adhocd user add %s: %w: %s", user, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// start runs the server and waits until it answers on its c2s port.
func (s *server) start(ctx context.Context) error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("soak: server log: %w", err)
	}
	cmd := exec.Command(s.bin, "serve", "--config", s.cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("soak: start adhocd: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(s.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("soak: adhocd exited at start (%s); its log: %s", cmd.ProcessState, tail(s.logPath))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", s.addr, time.Second); err == nil {
			c.Close()
			if r, err := http.Get("http://" + s.metricsAddr + "/readyz"); err == nil {
				r.Body.Close()
				if r.StatusCode == http.StatusOK {
					return nil
				}
			}
		}
	}
	return errors.New("soak: adhocd did not become ready within 30 s")
}

// pid is the running server's process ID.
func (s *server) pid() int { return s.cmd.Process.Pid }

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// stop ends the server with SIGTERM (SIGKILL after 15 s).
func (s *server) stop() error {
	if s.cmd == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		s.kill()
		return errors.New("soak: adhocd did not stop within 15 s of SIGTERM")
	}
	if st := s.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("soak: adhocd exited with %s; its log: %s", st, tail(s.logPath))
	}
	return nil
}

// alive reports whether the process has not exited.
func (s *server) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// tail returns the last lines of a file, for error messages.
func tail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 10 {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
