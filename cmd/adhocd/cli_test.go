package main_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// exitCode runs bin and returns its combined output and exit status.
func exitCode(t *testing.T, bin, stdin string, args ...string) (string, int) {
	t.Helper()
	out, err := runCmd(t, bin, stdin, args...)
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out, 0
	case errors.As(err, &ee):
		return out, ee.ExitCode()
	}
	t.Fatalf("adhocd %v: %v", args, err)
	return "", -1
}

// TestHelpAndUsage: help in every spelling exits 0 and lists every command;
// a command line adhocd cannot run exits 2 and says why.
func TestHelpAndUsage(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out, code := exitCode(t, bin, "", args...)
		if code != 0 {
			t.Fatalf("adhocd %v exited %d: %s", args, code, out)
		}
		for _, cmd := range []string{"serve", "user", "status", "check-config", "healthcheck", "version", "help"} {
			if !strings.Contains(out, "\n  "+cmd+" ") {
				t.Errorf("adhocd %v does not list %s:\n%s", args, cmd, out)
			}
		}
	}
	if out, code := exitCode(t, bin, "", "help", "user"); code != 0 || !strings.Contains(out, "usage: adhocd user add|passwd|disable|enable|delete|list") {
		t.Fatalf("help user: %d %s", code, out)
	}
	if out, code := exitCode(t, bin, "", "user", "add", "-h"); code != 0 || !strings.Contains(out, "-config") {
		t.Fatalf("user add -h: %d %s", code, out)
	}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"user"}, "usage: adhocd user"},
		{[]string{"user", "add"}, "usage: adhocd user add JID"},
		{[]string{"user", "rename", "a"}, `unknown user command "rename"`},
		{[]string{"version", "extra"}, "takes no arguments"},
	} {
		out, code := exitCode(t, bin, "", tc.args...)
		if code != 2 || !strings.Contains(out, tc.says) {
			t.Errorf("adhocd %v: exit %d, want 2 saying %q:\n%s", tc.args, code, tc.says, out)
		}
	}
}

// TestVersionStamped: the version given at build time is what `adhocd
// version` and `--version` print; a plain build says (devel).
func TestVersionStamped(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "adhocd")
	if out, err := exec.Command("go", "build", "-ldflags", "-X github.com/adhocd/adhocd/buildinfo.version=v9.8.7-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		if out, code := exitCode(t, bin, "", args...); code != 0 || !strings.HasPrefix(out, "adhocd v9.8.7-test (go1.") {
			t.Fatalf("adhocd %v: %d %q", args, code, out)
		}
	}
	if out, code := exitCode(t, build(t), "", "version"); code != 0 || !strings.HasPrefix(out, "adhocd (devel)") {
		t.Fatalf("plain build: %d %q", code, out)
	}
}

// TestCheckConfig: a valid configuration is reported with what the server
// would listen on, without listening or opening the store; an invalid one
// exits 1 naming the key and its line.
func TestCheckConfig(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := "domain: chat.example\nadmins: [root@chat.example]\nc2s:\n  listen: 127.0.0.1:15299\nmetrics:\n  listen: 127.0.0.1:19099\nstorage:\n  path: data\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := exitCode(t, bin, "", "check-config", "--config", cfg)
	if code != 0 {
		t.Fatalf("check-config exited %d: %s", code, out)
	}
	for _, want := range []string{"the configuration is valid", "domain:    chat.example", "c2s:       127.0.0.1:15299 (STARTTLS required)",
		"metrics:   127.0.0.1:19099", "storage:   " + filepath.Join(dir, "data"), "admins:    root@chat.example", "websocket: off", "cluster:   off (one process)",
		"muc:       conference.chat.example", "upload:    off", "components: off",
		"s2s:       :5269 (TLS required, SASL EXTERNAL or dialback)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config does not say %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("check-config created the store: %v", err)
	}
	// A replica of a cluster: the database with its password hidden, and
	// the Redis of the directory.
	clusterYAML := "domain: chat.example\nstorage:\n  path: data\n  backend: postgres\n  postgres:\n    dsn: postgres://adhocd:s3cret@db.example/adhocd\n" +
		"cluster:\n  redis:\n    addr: redis.example:6379\n"
	if err := os.WriteFile(cfg, []byte(clusterYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = exitCode(t, bin, "", "check-config", "--config", cfg)
	if code != 0 {
		t.Fatalf("check-config of a replica exited %d: %s", code, out)
	}
	for _, want := range []string{"storage:   postgres postgres://adhocd:xxxxx@db.example/adhocd (certificate and control socket in " + filepath.Join(dir, "data") + ")",
		"cluster:   redis redis.example:6379 (lease 20s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config of a replica does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("check-config printed the database password:\n%s", out)
	}
	// The services: upload with its folder, the components by domain and
	// never their secrets.
	servicesYAML := "domain: chat.example\nstorage:\n  path: data\nmuc:\n  domain: rooms.chat.example\n" +
		"http_upload:\n  enabled: true\n  listen: 127.0.0.1:15281\n" +
		"components:\n  services:\n    - domain: gw.chat.example\n      secret_env: ADHOCD_TEST_GW_SECRET\n"
	if err := os.WriteFile(cfg, []byte(servicesYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADHOCD_TEST_GW_SECRET", "gw-s3cret")
	out, code = exitCode(t, bin, "", "check-config", "--config", cfg)
	if code != 0 {
		t.Fatalf("check-config of the services exited %d: %s", code, out)
	}
	for _, want := range []string{"muc:       rooms.chat.example",
		"upload:    upload.chat.example, HTTP on 127.0.0.1:15281, files in " + filepath.Join(dir, "data", "upload"),
		"components: gw.chat.example on 127.0.0.1:5347"} {
		if !strings.Contains(out, want) {
			t.Errorf("check-config of the services does not say %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "gw-s3cret") {
		t.Errorf("check-config printed a component's secret:\n%s", out)
	}
	if err := os.WriteFile(cfg, []byte("domain: localhost\nlimits:\n  max_stanza_byte: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := exitCode(t, bin, "", "check-config", "--config", cfg); code != 1 || !strings.Contains(out, "max_stanza_byte") || !strings.Contains(out, "line 3") {
		t.Fatalf("bad config: exit %d: %s", code, out)
	}
}

// TestFlagsAfterArguments: --config may follow the JID, as people type it.
func TestFlagsAfterArguments(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	if out, code := exitCode(t, bin, "pw-alice\n", "user", "add", "alice@localhost", "--config", cfg); code != 0 {
		t.Fatalf("user add JID --config: %d %s", code, out)
	}
	if out, code := exitCode(t, bin, "", "user", "list", "--config="+cfg); code != 0 || out != "alice@localhost\n" {
		t.Fatalf("user list --config=: %d %q", code, out)
	}
}

// TestHealthcheckAndLockedStore: healthcheck says healthy while the server
// answers and exits 1 once it is gone; a second server on the same store
// fails saying which process holds it.
func TestHealthcheckAndLockedStore(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	_, portText, _ := net.SplitHostPort(servertest.FreeAddr(t))
	port, _ := strconv.Atoi(portText)
	cfg := filepath.Join(dir, "config.yaml")
	yaml := fmt.Sprintf("domain: localhost\nc2s:\n  listen: 127.0.0.1:%d\ns2s:\n  listen: \"\"\nstorage:\n  path: data\nlog:\n  level: info\n", port)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := exitCode(t, bin, "", "healthcheck", "--config", cfg, "--timeout", "1s"); code != 1 || !strings.Contains(out, "unhealthy") {
		t.Fatalf("healthcheck with no server: %d %s", code, out)
	}
	srv, addrs, logs := startAdhocd(t, bin, cfg)
	next(t, addrs, logs)
	if out, code := exitCode(t, bin, "", "healthcheck", "--config", cfg); code != 0 || !strings.Contains(out, "healthy: 127.0.0.1:"+strconv.Itoa(port)) {
		t.Fatalf("healthcheck: %d %s", code, out)
	}

	second := strings.Replace(yaml, strconv.Itoa(port), "0", 1)
	cfg2 := filepath.Join(dir, "second.yaml")
	if err := os.WriteFile(cfg2, []byte(second), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := exitCode(t, bin, "", "--config", cfg2)
	want := "is in use by another adhocd (pid " + strconv.Itoa(srv.Process.Pid) + "?)"
	if code != 1 || !strings.Contains(out, want) {
		t.Fatalf("a second server on the same store: exit %d, want 1 saying %q:\n%s", code, want, out)
	}

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	if out, code := exitCode(t, bin, "", "healthcheck", "--config", cfg, "--timeout", "1s"); code != 1 {
		t.Fatalf("healthcheck after stop: %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "adhocd.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the pid file outlives the server: %v", err)
	}
}

// TestStatusThroughControlSocket: adhocd status prints the status
// command's figures from the running server through its control socket,
// and says so when no server runs; account operations (add, passwd,
// disable, enable, delete) and status through the socket leave the admin
// commands' audit line, naming the local user.
func TestStatusThroughControlSocket(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	if out, code := exitCode(t, bin, "", "status", "--config", cfg); code != 1 || !strings.Contains(out, "no server answers") {
		t.Fatalf("status with no server: %d %s", code, out)
	}
	srv, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)
	if out, code := exitCode(t, bin, "pw-bob\n", "user", "add", "bob", "--config", cfg); code != 0 {
		t.Fatalf("user add through the socket: %d %s", code, out)
	}
	// bob writes to root, who is offline: archived on both sides, and
	// kept offline for root.
	bob := servertest.DialRaw(t, addr)
	bob.Login(clientTLS(t, dir), "bob", "pw-bob", "term")
	bob.Write(`<message to='root@localhost' type='chat' id='m1'><body>are you there?</body></message>`)
	stored := regexp.MustCompile(`Offline messages waiting: +[1-9]`)
	var out string
	var code int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		// Once the router has handled the message.
		if out, code = exitCode(t, bin, "", "status", "--config", cfg); code != 0 || stored.MatchString(out) || time.Now().After(deadline) {
			break
		}
	}
	if code != 0 {
		t.Fatalf("status: %d %s", code, out)
	}
	for _, want := range []string{`Archived messages \(all accounts\): +2\n`, `Archived messages \(bytes\): +[1-9][0-9]*\n`,
		`Offline messages waiting: +1\n`, `Offline messages waiting \(bytes\): +[1-9][0-9]*\n`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", want, out)
		}
	}
	for _, want := range []string{"Uptime:", "Version:", "Open connections:", "Bound sessions:", "Online users:", "Goroutines:"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	// The other account operations, through the socket too.
	for _, op := range []struct{ stdin, op string }{{"pw-bob-2\n", "passwd"}, {"", "disable"}, {"", "enable"}, {"", "delete"}} {
		if out, code := exitCode(t, bin, op.stdin, "user", op.op, "bob", "--config", cfg); code != 0 {
			t.Fatalf("user %s through the socket: %d %s", op.op, code, out)
		}
	}
	// Each operation left the admin commands' audit line, in the order they
	// ran; status's names no target.
	by := `msg="admin action" by="uid ` + strconv.Itoa(os.Getuid()) + ` on the control socket" `
	wantAudit := []string{
		by + `command=add targets=[bob] outcome=completed`,
		by + `command=status targets=[] outcome=completed`,
		by + `command=passwd targets=[bob] outcome=completed`,
		by + `command=disable targets=[bob] outcome=completed`,
		by + `command=enable targets=[bob] outcome=completed`,
		by + `command=delete targets=[bob] outcome=completed`,
	}
	inOrder := func(log string) (missing string) {
		for _, w := range wantAudit {
			i := strings.Index(log, w)
			if i < 0 {
				return w
			}
			log = log[i+len(w):]
		}
		return ""
	}
	deadline := time.Now().Add(5 * time.Second)
	for missing := inOrder(logs.String()); missing != ""; missing = inOrder(logs.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no audit line %q (after the ones before it) in the log:\n%s", missing, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = srv.Process.Signal(syscall.SIGTERM)
	_ = srv.Wait()
}

// TestParallelUserCommands: accounts made by several `adhocd user add` at
// once, with no server running, all land: each waits for the store while
// another holds it, instead of failing.
func TestParallelUserCommands(t *testing.T) {
	bin := build(t)
	cfg := writeConfig(t, t.TempDir())
	const n = 8
	errs := make(chan string, n)
	for i := range n {
		go func() {
			out, code := exitCode(t, bin, "pw\n", "user", "add", "u"+strconv.Itoa(i), "--config", cfg)
			if code != 0 {
				errs <- out
				return
			}
			errs <- ""
		}()
	}
	for range n {
		if e := <-errs; e != "" {
			t.Errorf("a parallel user add failed: %s", e)
		}
	}
	out, code := exitCode(t, bin, "", "user", "list", "--config", cfg)
	if code != 0 || strings.Count(out, "@localhost") != n {
		t.Fatalf("after %d parallel adds, user list: %d %q", n, code, out)
	}
}
