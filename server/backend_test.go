package server_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
)

// TestPostgresBackendUnreachable: with the PostgreSQL backend selected and
// no database answering, the server does not start, says which database it
// could not reach, and does not fall back to a bbolt file the operator did
// not ask for: nothing listens and no database file appears.
func TestPostgresBackendUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cfg := config.Default()
	cfg.C2S.Listen = addr
	cfg.S2S.Listen = "" // no federation listener
	cfg.Storage.Path = t.TempDir()
	cfg.Storage.Backend = config.BackendPostgres
	cfg.Storage.Postgres.DSN = "postgres://adhocd@127.0.0.1:1/adhocd"
	cfg.Log.Level = "warn"
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatalf("a valid postgres configuration is refused by New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = srv.Start(ctx)
	if err == nil {
		_ = srv.Shutdown(ctx)
		t.Fatal("the server started with storage.backend postgres")
	}
	if want := `database "adhocd" on 127.0.0.1:1 as "adhocd"`; !strings.Contains(err.Error(), want) {
		t.Fatalf("start failed with %q, want it to name the database: %q", err, want)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("something listens on %s after the failed start", addr)
	}
	if _, err := os.Stat(filepath.Join(cfg.Storage.Path, "adhocd.db")); !os.IsNotExist(err) {
		t.Fatalf("a bbolt file was made with the postgres backend selected (stat: %v)", err)
	}
}
