package config_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
)

func TestStorageBackendDefaults(t *testing.T) {
	def := config.Default()
	if def.Storage.Backend != config.BackendBolt {
		t.Fatalf("default backend %q, want bolt", def.Storage.Backend)
	}
	if p := def.Storage.Postgres; p.DSN != "" || p.MaxConns != 10 || p.ConnectTimeout.D() != 10*time.Second {
		t.Fatalf("default storage.postgres %+v", p)
	}
	shipped, err := config.Load(filepath.Join("..", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if shipped.Storage.Backend != def.Storage.Backend || shipped.Storage.Postgres != def.Storage.Postgres {
		t.Fatalf("config.yaml's storage disagrees with Default():\n%+v\n%+v", shipped.Storage, def.Storage)
	}
}

func TestStoragePostgres(t *testing.T) {
	cfg, err := config.Parse([]byte(`
storage:
  backend: postgres
  postgres:
    dsn: postgres://adhocd@db.example.org:5432/adhocd?sslmode=verify-full
    max_conns: 25
    connect_timeout: 3s
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Storage.Postgres
	if cfg.Storage.Backend != "postgres" || p.DSN != "postgres://adhocd@db.example.org:5432/adhocd?sslmode=verify-full" ||
		p.MaxConns != 25 || p.ConnectTimeout.D() != 3*time.Second {
		t.Fatalf("storage %+v", cfg.Storage)
	}
	kv, err := config.Parse([]byte("storage: {backend: postgres, postgres: {dsn: \"host=db user=adhocd dbname='the db'\"}}"))
	if err != nil {
		t.Fatalf("a keyword=value DSN is refused: %v", err)
	}
	if kv.Storage.Postgres.MaxConns != 10 {
		t.Fatalf("max_conns does not default: %+v", kv.Storage.Postgres)
	}
}

func TestStorageValidate(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"storage: {backend: mysql}", `storage.backend "mysql": unknown backend, must be bolt or postgres`},
		{"storage: {backend: Postgres, postgres: {dsn: 'host=db'}}", `storage.backend "Postgres": unknown backend`},
		{"storage: {backend: postgres}", "storage.postgres.dsn: must be set when storage.backend is postgres"},
		{"storage: {backend: postgres, postgres: {dsn: '  '}}", "storage.postgres.dsn: must be set"},
		{"storage: {postgres: {dsn: 'host=db'}}", "storage.postgres.dsn is set but storage.backend is bolt"},
		{"storage: {backend: postgres, postgres: {dsn: 'just some words'}}", "storage.postgres.dsn: want a postgres:// URL or keyword=value pairs"},
		{"storage: {backend: postgres, postgres: {dsn: \"host='db\"}}", "storage.postgres.dsn: a quoted value is not closed"},
		{"storage: {backend: postgres, postgres: {dsn: 'host=db', max_conns: 0}}", "storage.postgres.max_conns 0: must be positive"},
		{"storage: {backend: postgres, postgres: {dsn: 'host=db', connect_timeout: 0s}}", "storage.postgres.connect_timeout 0s: must be positive"},
		{"storage: {backend: postgres, postgres: {dsn: 'host=db', pasword: x}}", "pasword"},
	} {
		if _, err := config.Parse([]byte(tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: want an error mentioning %q, got %v", tc.yaml, tc.want, err)
		}
	}
}

// TestStorageDSNNeverQuoted: a DSN that does not parse may still hold a
// password, and the error that refuses it must not show it.
func TestStorageDSNNeverQuoted(t *testing.T) {
	for _, dsn := range []string{
		"postgres://adhocd:s3cr3t@db:5432/%zz",
		"host=db password=s3cr3t user",
		"host=db password='s3cr3t",
	} {
		_, err := config.Parse([]byte("storage: {backend: postgres, postgres: {dsn: \"" + dsn + "\"}}"))
		if err == nil {
			t.Errorf("%q was accepted", dsn)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("the error quotes the password: %v", err)
		}
	}
}

func TestRedactedDSN(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://adhocd:s3cr3t@db:5432/adhocd?sslmode=require", "postgres://adhocd:xxxxx@db:5432/adhocd?sslmode=require"},
		{"postgresql://adhocd@db/adhocd", "postgresql://adhocd@db/adhocd"},
		{"postgres://db/adhocd?user=adhocd&password=s3cr3t", "postgres://db/adhocd?password=xxxxx&user=adhocd"},
		{"host=db user=adhocd password=s3cr3t dbname=adhocd", "host=db user=adhocd password=xxxxx dbname=adhocd"},
		{"host=db password='s3 cr\\'3t' application_name='my app'", "host=db password=xxxxx application_name='my app'"},
		{"host=db password=s3\\ cr3t", "host=db password=xxxxx"},
		{"postgres://adhocd:s3cr3t@db/%zz", "(a DSN that does not parse)"},
		{"host=db password='s3cr3t", "(a DSN that does not parse)"},
	} {
		got := config.PostgresStorage{DSN: tc.dsn}.RedactedDSN()
		if got != tc.want {
			t.Errorf("RedactedDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
		if strings.Contains(got, "s3") && strings.Contains(tc.dsn, "s3") {
			t.Errorf("RedactedDSN(%q) shows the password: %q", tc.dsn, got)
		}
	}
}
