package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The backing services of the scale-out contenders (adhocd-pg and
// adhocd-cluster): a PostgreSQL 15 server from Debian's postgresql-15 and
// a Redis from Debian's redis-server, each started here as a child process
// on a free port of 127.0.0.1, with its data in a folder of its own, and
// stopped by its PID when the contender is done. Nothing of the machine's
// own PostgreSQL or Redis (their services, clusters, configuration) is
// used.
const (
	pgBin    = "/usr/lib/postgresql/15/bin"
	redisBin = "/usr/bin/redis-server"
	// pgDatabase is the database the replicas share; they connect as the
	// superuser, which pg_hba lets in from loopback without a password.
	pgDatabase = "adhocd"
	pgRole     = "postgres"
)

// backing is a started PostgreSQL or Redis.
type backing struct {
	port int
	pid  int
	stop func()
}

// startPostgres makes a new PostgreSQL cluster and starts its server.
//
// Unlike the tests' servers (storage/postgres/pgtest, which turns fsync and
// synchronous_commit off for speed), this one runs with PostgreSQL's
// defaults, durable: each commit waits for its WAL flush, as on a
// production database, and as the bolt single node fsyncs its batches. Its
// folder is a new one under the system's temporary folder, not under
// --work: as root the server runs as the postgres user, which must reach
// it, and --work's temporary folder is root's alone.
func startPostgres(ctx context.Context) (*backing, error) {
	for _, p := range []string{"initdb", "postgres", "psql"} {
		if _, err := os.Stat(filepath.Join(pgBin, p)); err != nil {
			return nil, fmt.Errorf("PostgreSQL 15 is not installed (%v): apt-get install postgresql-15", err)
		}
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("as root, PostgreSQL runs as the postgres user: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "adhocd-bench-pg-")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, err
		}
	}
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(pgBin, name), args...)
		cmd.Dir = dir
		cmd.Env = []string{"LC_ALL=C", "PATH=" + pgBin + ":/usr/bin:/bin"}
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	// UTF8 with the C locale, as docs/clustering.md asks of the database.
	if out, err := command("initdb", "-D", data, "-U", pgRole, "-A", "trust", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := command("postgres", "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	b := &backing{port: port, pid: cmd.Process.Pid, stop: func() {
		// SIGINT: PostgreSQL's fast shutdown (sessions ended, what is
		// committed kept).
		stopPID(cmd.Process, syscall.SIGINT, exited, 30*time.Second)
		os.RemoveAll(dir)
	}}
	// CREATE DATABASE doubles as the readiness check: it fails until the
	// server accepts connections.
	psql := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", pgRole, "-d", "postgres", "-v", "ON_ERROR_STOP=1",
		"-c", "CREATE DATABASE " + pgDatabase + " ENCODING 'UTF8'"}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := command("psql", psql...).CombinedOutput()
		if err == nil {
			break
		}
		select {
		case <-exited:
			err = errors.New("the server exited")
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(100 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
		}
		b.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("postgres on port %d: %v\n%s\n%s", port, err, out, log)
	}
	ok = true
	return b, nil
}

// pgDSN is the URL of the replicas' database.
func (b *backing) pgDSN() string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pgRole, b.port, pgDatabase)
}

// startRedis starts a Redis server that keeps nothing on disk (no RDB
// snapshots, no AOF), as the cluster needs it: what it holds is rebuilt by
// the replicas.
func startRedis(ctx context.Context, dir string) (*backing, error) {
	if _, err := os.Stat(redisBin); err != nil {
		return nil, fmt.Errorf("redis-server is not installed (%v): apt-get install redis-server", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p, err := startProcess(ctx, dir, port, redisBin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", "")
	if err != nil {
		return nil, err
	}
	return &backing{port: port, pid: p.pids[0], stop: p.stop}, nil
}

// stopPID sends sig to a child and waits until it has exited, killing it
// after grace.
func stopPID(p *os.Process, sig syscall.Signal, exited <-chan struct{}, grace time.Duration) {
	_ = p.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}

// freePort returns a TCP port of 127.0.0.1 that nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls adhocd's /readyz on metricsPort until it answers 200: a
// replica is ready once it holds its lease and is subscribed to its channel
// of the bus, so that stanzas for its sessions reach it.
func waitReady(ctx context.Context, metricsPort int) error {
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", metricsPort)
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready within 30 s: %s", url, strings.TrimSpace(last))
}
