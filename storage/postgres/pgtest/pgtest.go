// Package pgtest starts throwaway PostgreSQL servers for tests, as
// net/http/httptest starts HTTP servers: from the binaries of Debian's
// postgresql-15 package (/usr/lib/postgresql/15/bin), as processes of the
// test binary, on a free port of 127.0.0.1, with their data in a temporary
// folder. Nothing of the machine's own PostgreSQL is used: not its
// clusters (Debian's package makes one, on port 5432, when it is installed;
// no cluster here uses that port), not its service, not its configuration.
//
// A test calls Start for the DSN of a new, empty database of its own. In a
// package whose TestMain calls Main, all of them share one server, started
// at the first Start and stopped when the tests end: a database costs a few
// tens of milliseconds, a server a second or two. Without Main, each Start
// starts a server of its own, stopped at the test's cleanup. NewCluster
// gives a test a server of its own to stop and restart.
//
// Speed over durability: fsync, synchronous_commit and full_page_writes are
// off; a crash of the machine loses a test's data, which nobody wants back.
//
// initdb and postgres refuse to run as root, and the tests here run as root:
// then the server runs as the postgres user (which Debian's package
// creates), with its credentials set on the process, and its folder belongs
// to that user. The postmaster is a child of the test binary that the
// kernel kills when the binary ends (Linux's parent-death signal, tied to a
// thread kept for it), so that a test binary that panics or times out leaves
// no server running behind it.
//
// Without the binaries a test that needs them is skipped, unless the
// environment variable CI is set: then it fails, because CI must run them
// (.ci/run installs postgresql-15).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/internal/childproc"
)

// BinDir holds the PostgreSQL 15 programs of Debian's postgresql-15.
const BinDir = "/usr/lib/postgresql/15/bin"

// Superuser is the role every cluster is made with; it connects from
// loopback without a password. Any other role needs its password
// (scram-sha-256).
const Superuser = "postgres"

// Cluster is one running PostgreSQL server with its own data folder.
type Cluster struct {
	// Port is the server's TCP port on 127.0.0.1.
	Port int

	dir  string // the cluster's folder: data/, the socket, postgres.log
	cred *syscall.Credential
	dbs  atomic.Int64

	mu   sync.Mutex
	proc *process // nil while stopped
}

// process is one run of the postmaster.
type process = childproc.Process

var shared struct {
	main bool // Main runs the tests
	once sync.Once
	c    *Cluster
	err  error
}

// Main runs a package's tests (call it from TestMain) with one cluster
// shared by every Start, and stops that cluster after them.
func Main(m *testing.M) {
	shared.main = true
	code := m.Run()
	if shared.c != nil {
		shared.c.close()
	}
	os.Exit(code)
}

// PortEnv is the environment variable that points Start at a cluster
// already running on that port of 127.0.0.1 (with Superuser let in from
// loopback without a password), in place of one of its own: pgrun starts
// one for a whole `go test ./...`, so that every package's databases are
// on one server. NewCluster still starts a server of its own.
const PortEnv = "ADHOCD_PGTEST_PORT"

// Start returns the DSN of a new, empty database (owned by Superuser) on
// a running cluster: the one PortEnv names, else the package's shared one
// under Main, else one started for this test alone. It skips the test when
// PostgreSQL is not installed, or fails it if CI is set. The database is
// dropped at the test's cleanup.
func Start(t testing.TB) string {
	t.Helper()
	if port := os.Getenv(PortEnv); port != "" {
		shared.once.Do(func() {
			p, err := strconv.Atoi(port)
			if err != nil || p <= 0 || p > 65535 {
				shared.err = fmt.Errorf("%s=%q: not a port", PortEnv, port)
				return
			}
			shared.c = &Cluster{Port: p} // not ours to stop
		})
		if shared.err != nil {
			t.Fatalf("pgtest: %v", shared.err)
		}
		return shared.c.CreateDatabase(t)
	}
	requireBinaries(t)
	if !shared.main {
		return NewCluster(t).CreateDatabase(t)
	}
	shared.once.Do(func() { shared.c, shared.err = start() })
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	return shared.c.CreateDatabase(t)
}

// Serve starts a cluster that is nobody's test's: pgrun's, for the test
// binaries it runs (PortEnv). Close stops it.
func Serve() (*Cluster, error) { return start() }

// Close stops a cluster of Serve at once and removes its folder.
func (c *Cluster) Close() { c.close() }

// NewCluster starts a cluster for the test alone, stopped and removed at its
// cleanup; it skips or fails as Start does without the binaries.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	requireBinaries(t)
	c, err := start()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(c.close)
	return c
}

func requireBinaries(t testing.TB) {
	t.Helper()
	for _, p := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(BinDir, p)); err != nil {
			msg := fmt.Sprintf("pgtest: PostgreSQL 15 is not installed (%v); install Debian's postgresql-15", err)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

// DSN returns the URL that connects as role to database db (no password:
// the caller adds one, or the environment does).
func (c *Cluster) DSN(role, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(role), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/" + db}
	u.RawQuery = "sslmode=disable"
	return u.String()
}

// CreateDatabase makes a new, empty database, named after the test, and
// returns the DSN that connects to it as Superuser; it is dropped at the
// test's cleanup (with the sessions still on it).
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	// The pid keeps apart the databases of test binaries that share a
	// cluster (PortEnv).
	name := fmt.Sprintf("t%d_%d_%s", os.Getpid(), c.dbs.Add(1), strings.ToLower(nonIdent.ReplaceAllString(t.Name(), "_")))
	if len(name) > 63 {
		name = name[:63]
	}
	ident := pgx.Identifier{name}.Sanitize()
	if err := c.Exec(context.Background(), "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: %v", err)
		}
	})
	return c.DSN(Superuser, name)
}

var nonIdent = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// Exec runs sql as Superuser in the postgres database, for what a test
// sets up across databases (roles, say).
func (c *Cluster) Exec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.DSN(Superuser, "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// start makes a cluster in a new folder and starts its server.
func start() (*Cluster, error) {
	c := &Cluster{}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as the postgres user: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not t.TempDir: a shared cluster outlives the test that starts it, and
	// the server's user must reach its folder (MkdirTemp's parent is /tmp).
	dir, err := os.MkdirTemp("", "adhocd-pgtest-")
	if err != nil {
		return nil, err
	}
	c.dir = dir
	if c.cred != nil {
		if err := os.Chown(dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			c.remove()
			return nil, err
		}
	}
	if err := c.initdb(); err != nil {
		c.remove()
		return nil, err
	}
	// A free port now may be taken by the time the server binds it: try
	// again on another.
	for try := 0; ; try++ {
		if c.Port, err = childproc.FreePort(); err == nil {
			err = c.Start()
		}
		if err == nil {
			return c, nil
		}
		if try == 4 || !strings.Contains(err.Error(), "could not bind") {
			c.remove()
			return nil, err
		}
	}
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// initdb makes the data folder: UTF8 with the C locale (byte order, as the
// store wants), and an authentication that lets the superuser in from
// loopback and asks every other role for its password.
func (c *Cluster) initdb() error {
	cmd := c.command(filepath.Join(BinDir, "initdb"), "-D", c.data(), "-U", Superuser, "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	hba := filepath.Join(c.data(), "pg_hba.conf")
	conf := "# pgtest: the superuser without a password, every other role with its password\n" +
		"local all all trust\n" +
		"host all " + Superuser + " 127.0.0.1/32 trust\n" +
		"host all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(hba, []byte(conf), 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		return os.Chown(hba, int(c.cred.Uid), int(c.cred.Gid))
	}
	return nil
}

// command runs a PostgreSQL program as the cluster's user, with an
// environment of its own (no PG* variable of the test's).
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=" + BinDir + ":/usr/bin:/bin"}
	cmd.Dir = c.dir
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

// Start starts the cluster's server again after Stop, on the same port and
// data; it returns when the server accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("pgtest: the server is running")
	}
	log, err := childproc.OpenLog(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := c.command(filepath.Join(BinDir, "postgres"), "-D", c.data(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(c.Port),
		"-c", "unix_socket_directories="+c.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "shared_buffers=16MB",
		"-c", "max_connections=200",
	)
	cmd.Stdout, cmd.Stderr = log, log
	p, err := childproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	c.proc = p
	if err := c.waitReady(p); err != nil {
		c.stop(p, syscall.SIGQUIT)
		c.proc = nil
		return fmt.Errorf("pgtest: postgres on port %d: %w\n%s", c.Port, err, log.Tail())
	}
	return nil
}

// waitReady returns when the server answers a query, or fails when it
// exits or takes more than half a minute.
func (c *Cluster) waitReady(p *process) error {
	return p.WaitReady(30*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN(Superuser, "postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
		}
		return err
	})
}

// Stop shuts the server down (fast: sessions are ended, what is committed
// is kept) and returns when it has exited; Start starts it again.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.stop(c.proc, syscall.SIGINT)
		c.proc = nil
	}
}

// Kill ends the server at once, as a crash of PostgreSQL would (SIGKILL
// of the postmaster and its backends); Start recovers it.
func (c *Cluster) Kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		c.stop(c.proc, syscall.SIGKILL)
		c.proc = nil
	}
}

// stop sends sig to the postmaster (SIGINT: fast shutdown; SIGQUIT:
// immediate, as pg_ctl stop -m immediate sends it; SIGKILL: a crash, sent
// to its backends too) and waits for it and them to exit, killing it after
// ten seconds. The caller holds mu.
func (c *Cluster) stop(p *process, sig syscall.Signal) {
	pid := p.Pid()
	kids := children(pid)
	if sig == syscall.SIGKILL {
		p.Signal(sig)
		for _, k := range kids {
			if isChild(k, pid) { // not a pid reused meanwhile
				_ = syscall.Kill(k, syscall.SIGKILL)
			}
		}
	}
	p.Stop(sig, 10*time.Second)
	// A server refuses to start while processes of the one before hold its
	// shared memory: wait for them too (each ends when it sees the
	// postmaster gone).
	for _, k := range kids {
		for i := 0; i < 200 && alive(k); i++ {
			time.Sleep(25 * time.Millisecond)
		}
	}
}

// close stops the server at once and removes its folder.
func (c *Cluster) close() {
	c.mu.Lock()
	if c.proc != nil {
		c.stop(c.proc, syscall.SIGQUIT)
		c.proc = nil
	}
	c.mu.Unlock()
	c.remove()
}

func (c *Cluster) remove() {
	if c.dir != "" { // "": PortEnv's, not ours
		_ = os.RemoveAll(c.dir)
	}
}
