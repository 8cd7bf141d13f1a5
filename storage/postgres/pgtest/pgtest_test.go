package pgtest_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// This package has no TestMain calling pgtest.Main: each Start here starts
// a server of its own, as in a package that forgets Main.

func query(t *testing.T, dsn, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

// TestStartAlone: without Main, Start gives a database on a server that
// the test's cleanup stops; it is PostgreSQL 15, on loopback only, in UTF8.
func TestStartAlone(t *testing.T) {
	t.Setenv(pgtest.PortEnv, "") // a server of its own, even under pgrun
	var port string
	t.Run("server", func(t *testing.T) {
		dsn := pgtest.Start(t)
		v, err := query(t, dsn, "SELECT current_setting('server_version_num')")
		if err != nil {
			t.Fatal(err)
		}
		if n, _ := strconv.Atoi(v); n/10000 != 15 {
			t.Fatalf("server version %s, want 15", v)
		}
		for sql, want := range map[string]string{
			"SHOW listen_addresses": "127.0.0.1",
			"SHOW server_encoding":  "UTF8",
			"SHOW fsync":            "off",
			"SELECT current_user":   pgtest.Superuser,
		} {
			if got, err := query(t, dsn, sql); err != nil || got != want {
				t.Errorf("%s = %q, %v; want %q", sql, got, err, want)
			}
		}
		port, _ = query(t, dsn, "SHOW port")
	})
	// The subtest's cleanup stopped its server.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second); err == nil {
		c.Close()
		t.Fatalf("a server still listens on port %s after its test", port)
	}
}

// TestRestartKeepsData: what was committed before Stop, or before Kill (a
// crash, with fsync off but the machine up), is there after Start.
func TestRestartKeepsData(t *testing.T) {
	c := pgtest.NewCluster(t)
	dsn := c.CreateDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, "CREATE TABLE kept AS SELECT 'one'::text AS v")
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, stop := range []struct {
		name string
		fn   func()
	}{{"stop", c.Stop}, {"kill", c.Kill}} {
		stop.fn()
		if _, err := query(t, dsn, "SELECT 'up'"); err == nil {
			t.Fatalf("after %s the server still answers", stop.name)
		}
		if err := c.Start(); err != nil {
			t.Fatalf("start after %s: %v", stop.name, err)
		}
		if v, err := query(t, dsn, "SELECT v FROM kept"); err != nil || v != "one" {
			t.Fatalf("after %s and start: %q, %v", stop.name, v, err)
		}
	}
}

// TestClusterFolderRemoved: the cluster's folder goes with its test.
func TestClusterFolderRemoved(t *testing.T) {
	var dir string
	t.Run("cluster", func(t *testing.T) {
		dsn := pgtest.NewCluster(t).CreateDatabase(t)
		var err error
		if dir, err = query(t, dsn, "SHOW data_directory"); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := os.Stat(filepath.Dir(dir)); !os.IsNotExist(err) {
		t.Fatalf("%s is still there (%v)", filepath.Dir(dir), err)
	}
}
