package main_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/auth"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// build compiles adhocd once per test binary run.
func build(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "adhocd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := "domain: localhost\nadmins: [root@localhost]\nc2s:\n  listen: 127.0.0.1:0\ns2s:\n  listen: \"\"\nstorage:\n  path: data\nlog:\n  level: info\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func runCmd(t *testing.T, bin, stdin string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestServerLifecycle runs the real binary: accounts made with the server
// stopped and while it runs, an administrator bootstrapped from the
// environment, a client login, and SIGTERM ending it with exit status 0.
func TestServerLifecycle(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)

	if out, err := runCmd(t, bin, "wonderland\n", "user", "add", "--config", cfg, "alice@localhost"); err != nil {
		t.Fatalf("user add (offline): %v\n%s", err, out)
	}
	if out, err := runCmd(t, bin, "x\n", "user", "add", "--config", cfg, "alice@localhost"); err == nil || !strings.Contains(out, "exists") {
		t.Fatalf("adding an existing user: %v %s", err, out)
	}
	if out, err := runCmd(t, bin, "x\n", "user", "add", "--config", cfg, "eve@example.org"); err == nil || !strings.Contains(out, "domain") {
		t.Fatalf("adding a user of another domain: %v %s", err, out)
	}

	cmd, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)

	// Accounts while the server runs go through its control socket.
	if out, err := runCmd(t, bin, "builder\n", "user", "add", "--config", cfg, "bob"); err != nil {
		t.Fatalf("user add (online): %v\n%s", err, out)
	}
	if out, err := runCmd(t, bin, "", "user", "list", "--config", cfg); err != nil || out != "alice@localhost\nbob@localhost\nroot@localhost\n" {
		t.Fatalf("user list: %v %q", err, out)
	}

	tlsCfg := clientTLS(t, dir)

	bob := servertest.DialRaw(t, addr)
	bob.Login(tlsCfg, "bob", "builder", "term")
	root := servertest.DialRaw(t, addr)
	root.Login(tlsCfg, "root", "toor", "admin") // the bootstrapped admin logs in

	// A password change ends the account's sessions.
	if out, err := runCmd(t, bin, "newpass\n", "user", "passwd", "--config", cfg, "bob@localhost"); err != nil {
		t.Fatalf("user passwd: %v\n%s", err, out)
	}
	if got, _ := bob.ClosedByServer(5 * time.Second); !strings.Contains(got, "<not-authorized") {
		t.Fatalf("bob's session after passwd: %q", got)
	}
	bob2 := servertest.DialRaw(t, addr)
	bob2.Login(tlsCfg, "bob", "newpass", "term")
	if out, err := runCmd(t, bin, "", "user", "delete", "--config", cfg, "bob@localhost"); err != nil {
		t.Fatalf("user delete: %v\n%s", err, out)
	}
	if got, _ := bob2.ClosedByServer(5 * time.Second); !strings.Contains(got, "<not-authorized") {
		t.Fatalf("bob's session after delete: %q", got)
	}

	// SIGTERM: the connected client gets system-shutdown, the process exits 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got, _ := root.ClosedByServer(10 * time.Second); !strings.Contains(got, "<system-shutdown") {
		t.Fatalf("client at shutdown got %q", got)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("adhocd did not exit after SIGTERM")
	}
	// With the server stopped the store is free again.
	if out, err := runCmd(t, bin, "", "user", "list", "--config", cfg); err != nil || out != "alice@localhost\nroot@localhost\n" {
		t.Fatalf("user list after stop: %v %q", err, out)
	}
}

func TestBadConfigIsReported(t *testing.T) {
	bin := build(t)
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("domain: localhost\nc2s:\n  lisen: ':5222'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, bin, "", "--config", cfg)
	if err == nil || !strings.Contains(out, "lisen") || !strings.Contains(out, "line 3") {
		t.Fatalf("want an error naming the key and line, got %v: %s", err, out)
	}
}

var listening = regexp.MustCompile(`adhocd listening.*c2s=(\S+)`)

// clientTLS trusts the self-signed certificate adhocd generated in dir/data.
func clientTLS(t *testing.T, dir string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dir, "data", "selfsigned-cert.pem"))
	if err != nil {
		t.Fatalf("no self-signed certificate generated: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// startAdhocd runs adhocd on cfg with root@localhost/toor bootstrapped as
// administrator; the process is killed when the test ends if still running.
func startAdhocd(t *testing.T, bin, cfg string) (*exec.Cmd, <-chan string, *servertest.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Env = append(os.Environ(), "ADHOCD_ADMIN_JID=root@localhost", "ADHOCD_ADMIN_PASSWORD=toor")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	logs := &servertest.SyncBuffer{}
	return cmd, listenAddrs(stderr, logs), logs
}

// listenAddrs reads the log and sends every address the server reports
// listening on (a restarted process reports a new one); the whole log keeps
// being collected into logs.
func listenAddrs(r io.Reader, logs *servertest.SyncBuffer) <-chan string {
	found := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	return found
}

// next waits for the next listening address.
func next(t *testing.T, addrs <-chan string, logs *servertest.SyncBuffer) string {
	t.Helper()
	select {
	case a := <-addrs:
		return a
	case <-time.After(15 * time.Second):
		t.Fatalf("adhocd never listened:\n%s", logs.String())
		return ""
	}
}

// TestAdminRestartAndShutdown: the XEP-0133 restart command makes the real
// process execute itself again (it serves anew on the same data), and the
// shutdown command makes it exit 0.
func TestAdminRestartAndShutdown(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	cmd, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)

	tlsCfg := clientTLS(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run := func(addr, node string) {
		t.Helper()
		c, err := servertest.Connect(t, addr, tlsCfg, "localhost", "root", "toor")
		if err != nil {
			t.Fatalf("login to %s: %v\n%s", addr, err, logs.String())
		}
		res, err := adhoc.NewRequester(c.Session).Run(ctx, jid.MustParse("localhost"), admin.Node(node),
			func(context.Context, *adhoc.Response) (adhoc.Action, adhoc.Values, error) {
				return adhoc.Complete, adhoc.Values{}, nil
			})
		if err != nil || res.Status != adhoc.Completed {
			t.Fatalf("%s: %+v %v", node, res, err)
		}
	}
	pid := cmd.Process.Pid
	run(addr, "restart")
	addr = next(t, addrs, logs) // the same process, executed again
	if !strings.Contains(logs.String(), "restarting") || cmd.Process.Pid != pid {
		t.Fatalf("no restart in the log:\n%s", logs.String())
	}
	run(addr, "shutdown")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after shutdown: %v\n%s", err, logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("adhocd did not exit after the shutdown command")
	}
}

var (
	metricsListening = regexp.MustCompile(`metrics listening.*addr=(\S+)`)
	pprofListening   = regexp.MustCompile(`pprof listening.*addr=(\S+)`)
)

// TestMetricsEndpoint: with metrics.listen set, the binary serves /healthz,
// /readyz and /metrics, and a login shows in the counters; with
// debug.pprof_listen set, Go's profiles of the server on a listener apart.
func TestMetricsEndpoint(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := "c2s:\n  listen: 127.0.0.1:0\ns2s:\n  listen: \"\"\nstorage:\n  path: data\nmetrics:\n  listen: 127.0.0.1:0\ndebug:\n  pprof_listen: 127.0.0.1:0\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)
	m := metricsListening.FindStringSubmatch(logs.String())
	p := pprofListening.FindStringSubmatch(logs.String())
	if m == nil || p == nil || m[1] == p[1] {
		t.Fatalf("no metrics and pprof listeners of their own in the log:\n%s", logs.String())
	}
	getFrom := func(base, path string) (int, string) {
		resp, err := http.Get("http://" + base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	get := func(path string) (int, string) { return getFrom(m[1], path) }
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	if code, body := getFrom(p[1], "/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "adhocd/server.(*Server)") {
		t.Fatalf("goroutine profile: %d %.300s", code, body)
	}
	if code, _ := get("/debug/pprof/"); code != 404 {
		t.Fatalf("the metrics listener serves profiles: %d", code)
	}
	tlsCfg := clientTLS(t, dir)
	if _, err := servertest.Connect(t, addr, tlsCfg, "localhost", "root", "toor"); err != nil {
		t.Fatal(err)
	}
	_, body := get("/metrics")
	for _, want := range []string{`adhocd_logins_total{mechanism="SCRAM-SHA-256",outcome="success"} 1`, "adhocd_sessions_bound 1", "adhocd_offline_bytes 0", "adhocd_offline_limit_bytes 2.68435456e+08", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

var sessionIDRE = regexp.MustCompile(`sessionid="([^"]+)"`)

// TestKubernetesLifecycle plays a pod's life on one machine: SIGTERM while a
// client is connected and a multi-stage command session is open makes
// /readyz fail, sends system-shutdown, closes the store and exits 0 well
// within the chart's grace period; started again on the same data, the
// accounts and the open command session are there.
func TestKubernetesLifecycle(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	yaml := "c2s:\n  listen: 127.0.0.1:0\ns2s:\n  listen: \"\"\nstorage:\n  path: data\nmetrics:\n  listen: 127.0.0.1:0\nadhoc:\n  persist: true\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCmd(t, bin, "wonderland\n", "user", "add", "--config", cfg, "alice@localhost"); err != nil {
		t.Fatalf("user add: %v %s", err, out)
	}
	cmd, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)
	m := metricsListening.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no metrics listener:\n%s", logs.String())
	}
	tlsCfg := clientTLS(t, dir)

	root := servertest.DialRaw(t, addr)
	root.Login(tlsCfg, "root", "toor", "console")
	root.Write(`<iq type='set' id='c1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#add-user'/></iq>`)
	sid := sessionIDRE.FindStringSubmatch(root.Expect(`id="c1".*</iq>`))
	if sid == nil {
		t.Fatal("no command session opened")
	}

	// Watch /readyz from now until the listener goes away.
	statuses := make(chan int, 1000)
	go func() {
		defer close(statuses)
		for i := 0; i < 2000; i++ {
			resp, err := http.Get("http://" + m[1] + "/readyz")
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if got, _ := root.ClosedByServer(10 * time.Second); !strings.Contains(got, "<system-shutdown") {
		t.Fatalf("the client got %q", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit status: %v\n%s", err, logs.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s to stop; the chart's grace period is 45 s and adhocd promises 20", d)
	}
	sawReady, sawUnready := false, false
	for s := range statuses {
		switch {
		case s == 200 && !sawUnready:
			sawReady = true
		case s == 503:
			sawUnready = true
		case s == 200 && sawUnready:
			t.Fatal("/readyz was ready again after shutdown began")
		}
	}
	if !sawReady || !sawUnready {
		t.Fatalf("/readyz: ready %v, then unready %v", sawReady, sawUnready)
	}

	// The next pod, on the same volume.
	_, addrs2, logs2 := startAdhocd(t, bin, cfg)
	addr2 := next(t, addrs2, logs2)
	alice := servertest.DialRaw(t, addr2)
	alice.Login(tlsCfg, "alice", "wonderland", "x")
	root2 := servertest.DialRaw(t, addr2)
	root2.Login(tlsCfg, "root", "toor", "console")
	root2.Write(`<iq type='set' id='c2' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#add-user' sessionid='` + sid[1] + `' action='complete'><x xmlns='jabber:x:data' type='submit'><field var='accountjid'><value>carol@localhost</value></field><field var='password'><value>c4rol</value></field><field var='password-verify'><value>c4rol</value></field></x></command></iq>`)
	if got := root2.Expect(`id="c2".*</iq>`); !strings.Contains(got, `status="completed"`) {
		t.Fatalf("the open session after the restart: %q", got)
	}
	carol := servertest.DialRaw(t, addr2)
	carol.Login(tlsCfg, "carol", "c4rol", "y")
}

// rss reads a process's resident memory from /proc (Linux).
func rss(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Memory budgets the server keeps, measured on the process's own RSS.
const (
	budgetPerUnauthenticatedConn = 48 << 10 // bytes
	budgetPerCommandSession      = 4 << 10  // bytes
)

// TestMemoryBudget: 1,000 unauthenticated connections and 10,000 abandoned
// command sessions keep adhocd's resident memory within the budgets above,
// each measured in a fresh process; 40,000 more sessions beyond
// adhoc.max_sessions add less than twice what the first 10,000 did (the
// collector's headroom and the bounded set of ended ids, not sessions; held,
// they would add four times).
func TestMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("opens a thousand connections")
	}
	bin := build(t)
	start := func() (int, string, string) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "config.yaml")
		yaml := "c2s:\n  listen: 127.0.0.1:0\ns2s:\n  listen: \"\"\nstorage:\n  path: data\nlimits:\n  max_connections_per_address: 5000\n  pre_auth_timeout: 5m\nadhoc:\n  max_sessions: 10000\n  max_sessions_per_user: 100000\n"
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd, addrs, logs := startAdhocd(t, bin, cfg)
		addr := next(t, addrs, logs)
		time.Sleep(200 * time.Millisecond)
		return cmd.Process.Pid, addr, dir
	}

	t.Run("1,000 unauthenticated connections", func(t *testing.T) {
		pid, addr, _ := start()
		base := rss(t, pid)
		conns := make([]net.Conn, 0, 1000)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := 0; i < 1000; i++ {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
			if _, err := io.WriteString(c, servertest.Header); err != nil {
				t.Fatal(err)
			}
		}
		// Every stream is open (features received) before measuring.
		buf := make([]byte, 4096)
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got := ""
			for !strings.Contains(got, "</stream:features>") {
				n, err := c.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				got += string(buf[:n])
			}
		}
		with := rss(t, pid)
		per := (with - base) / 1000
		t.Logf("RSS %d MiB idle, %d MiB with 1,000 unauthenticated connections: %d KiB each", base>>20, with>>20, per>>10)
		if per > budgetPerUnauthenticatedConn {
			t.Errorf("%d bytes per unauthenticated connection, budget %d", per, budgetPerUnauthenticatedConn)
		}
	})

	t.Run("10,000 abandoned command sessions", func(t *testing.T) {
		pid, addr, dir := start()
		root := servertest.DialRaw(t, addr)
		root.Login(clientTLS(t, dir), "root", "toor", "bulk")
		// Sessions of a multi-stage command (add-user's form), pipelined.
		open := func(n int) {
			for i := 0; i < n; i += 500 {
				var b strings.Builder
				for j := i; j < i+500 && j < n; j++ {
					fmt.Fprintf(&b, `<iq type='set' id='s%d' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#add-user'/></iq>`, j)
				}
				root.Write(b.String())
				root.Expect(fmt.Sprintf(`id="s%d"[^>]*>.*</iq>$`, min(i+500, n)-1))
			}
		}
		base := rss(t, pid)
		open(10000)
		with := rss(t, pid)
		per := (with - base) / 10000
		t.Logf("RSS %d MiB idle, %d MiB with 10,000 command sessions: %d bytes each", base>>20, with>>20, per)
		if per > budgetPerCommandSession {
			t.Errorf("%d bytes per command session, budget %d", per, budgetPerCommandSession)
		}
		// 40,000 more: were they held, they would cost four times the first
		// 10,000; bounded, the growth is only the collector's headroom.
		open(40000)
		beyond := rss(t, pid)
		t.Logf("RSS %d MiB after 40,000 more sessions beyond adhoc.max_sessions", beyond>>20)
		if beyond-with > 2*(with-base) {
			t.Errorf("40,000 sessions beyond adhoc.max_sessions grew memory from %d to %d MiB (the first 10,000 took %d MiB)", with>>20, beyond>>20, (with-base)>>20)
		}
	})
}

// TestKillDuringAdminWrites: adhocd killed with SIGKILL in the middle of admin
// writes (add-user, change-user-password, delete-user, edit-admin) and
// started again: every operation answered completed is there, the one in
// flight is either wholly done or not at all, and the store opens cleanly.
func TestKillDuringAdminWrites(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir)
	const n = 8
	for i := 0; i < n; i++ {
		for _, u := range []string{"c", "d"} {
			if out, err := runCmd(t, bin, "old\n", "user", "add", "--config", cfg, fmt.Sprintf("%s%d@localhost", u, i)); err != nil {
				t.Fatalf("user add: %v %s", err, out)
			}
		}
	}
	cmd, addrs, logs := startAdhocd(t, bin, cfg)
	addr := next(t, addrs, logs)
	root := servertest.DialRaw(t, addr)
	root.Login(clientTLS(t, dir), "root", "toor", "writer")

	type op struct {
		kind string // add, passwd, delete, admin
		user string
	}
	seq := 0
	// do runs one admin command (execute, then complete with fields);
	// kill, if set, kills the server right after sending the completion.
	do := func(node, fields string, kill bool) bool {
		seq++
		root.Write(fmt.Sprintf(`<iq type='set' id='e%d' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#%s'/></iq>`, seq, node))
		got, ok := root.ReadUntil(fmt.Sprintf(`id="e%d".*</iq>`, seq), 5*time.Second)
		sid := sessionIDRE.FindStringSubmatch(got)
		if !ok || sid == nil {
			t.Fatalf("execute %s: %q", node, got)
		}
		root.Write(fmt.Sprintf(`<iq type='set' id='c%d' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#%s' sessionid='%s' action='complete'><x xmlns='jabber:x:data' type='submit'>%s</x></command></iq>`, seq, node, sid[1], fields))
		if kill {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			return false
		}
		got, ok = root.ReadUntil(fmt.Sprintf(`id="c%d".*</iq>`, seq), 5*time.Second)
		return ok && strings.Contains(got, `status="completed"`) && !strings.Contains(got, `type="error"`)
	}
	field := func(v, val string) string {
		return `<field var='` + v + `'><value>` + val + `</value></field>`
	}
	var done []op
	if !do("edit-admin", field("adminjids", "ops@localhost"), false) {
		t.Fatal("edit-admin did not complete")
	}
	done = append(done, op{"admin", "ops"})
	var inFlight op
	for i := 0; i < n; i++ {
		steps := []struct {
			o            op
			node, fields string
		}{
			{op{"add", fmt.Sprintf("a%d", i)}, "add-user", field("accountjid", fmt.Sprintf("a%d@localhost", i)) + field("password", "pa"+strconv.Itoa(i)) + field("password-verify", "pa"+strconv.Itoa(i))},
			{op{"passwd", fmt.Sprintf("c%d", i)}, "change-user-password", field("accountjid", fmt.Sprintf("c%d@localhost", i)) + field("password", "new"+strconv.Itoa(i))},
			{op{"delete", fmt.Sprintf("d%d", i)}, "delete-user", field("accountjids", fmt.Sprintf("d%d@localhost", i))},
		}
		for j, s := range steps {
			last := i == n-1 && j == len(steps)-1
			if last {
				inFlight = s.o
			}
			if do(s.node, s.fields, last) {
				done = append(done, s.o)
			} else if !last {
				t.Fatalf("%s %s did not complete", s.o.kind, s.o.user)
			}
		}
	}
	_ = cmd.Wait()

	st, err := storage.Open(filepath.Join(dir, "data"), 2*time.Second)
	if err != nil {
		t.Fatalf("the store does not open after SIGKILL: %v", err)
	}
	ctx := context.Background()
	check := func(o op, mustBeDone bool) {
		a, err := st.Account(ctx, o.user)
		exists := err == nil
		var applied bool
		switch o.kind {
		case "add":
			applied = exists && auth.VerifyPassword(a, "pa"+strings.TrimPrefix(o.user, "a"))
			if exists && !applied {
				t.Errorf("%s exists without its password: half applied", o.user)
			}
		case "passwd":
			applied = exists && auth.VerifyPassword(a, "new"+strings.TrimPrefix(o.user, "c"))
			if !applied && !(exists && auth.VerifyPassword(a, "old")) {
				t.Errorf("%s has neither the old nor the new password", o.user)
			}
		case "delete":
			applied = !exists
		case "admin":
			raw, err := st.Setting(ctx, "admins")
			applied = err == nil && strings.Contains(string(raw), "ops@localhost")
		}
		if mustBeDone && !applied {
			t.Errorf("%s %s was answered completed but is not in the store", o.kind, o.user)
		}
	}
	for _, o := range done {
		check(o, true)
	}
	check(inFlight, false)
	if len(done) != 1+3*n-1 {
		t.Fatalf("%d operations completed before the kill, want %d", len(done), 3*n)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// And the server starts again on it.
	_, addrs2, logs2 := startAdhocd(t, bin, cfg)
	again := servertest.DialRaw(t, next(t, addrs2, logs2))
	again.Login(clientTLS(t, dir), "a0", "pa0", "x")
}
