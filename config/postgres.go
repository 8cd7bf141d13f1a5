package config

import (
	"errors"
	"net/url"
	"strings"
	"time"
)

// The storage backends (storage.backend).
const (
	// BackendBolt is the embedded bbolt file under storage.path, the
	// default: one process, nothing to run beside it.
	BackendBolt = "bolt"
	// BackendPostgres is a PostgreSQL database shared by every replica
	// (storage.postgres), the first step of running several replicas.
	BackendPostgres = "postgres"
)

// PostgresPasswordEnv is the environment variable whose value, when it is
// set and not empty, is the PostgreSQL password: it replaces any password
// in storage.postgres.dsn, so that the password can come from a Kubernetes
// Secret and never be written in config.yaml.
const PostgresPasswordEnv = "ADHOCD_POSTGRES_PASSWORD"

// PostgresStorage configures the PostgreSQL backend (storage.backend:
// postgres). Every field is comparable, so that Config stays comparable.
type PostgresStorage struct {
	// DSN names the database, as libpq (and pgx) read it: a URL
	// (postgres://user@host:5432/adhocd?sslmode=verify-full) or
	// keyword=value pairs (host=db user=adhocd dbname=adhocd). The
	// PG* environment variables fill what it leaves out, as with psql.
	// It is never logged as written: RedactedDSN hides its password.
	DSN string `yaml:"dsn"`
	// MaxConns bounds the connections of this process's pool; it wins over
	// a pool_max_conns in the DSN.
	MaxConns int `yaml:"max_conns"`
	// ConnectTimeout bounds the opening of one connection (the DNS lookup,
	// TCP, TLS and authentication); it wins over a connect_timeout in the
	// DSN.
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// Defaults of storage.postgres.
const (
	DefaultPostgresMaxConns       = 10
	DefaultPostgresConnectTimeout = 10 * time.Second
)

// validate checks the backend and, for postgres, its section; bad collects
// what is wrong. A DSN's own text is never in a message: it may hold a
// password.
func (s *Storage) validate(bad func(format string, args ...any)) {
	switch s.Backend {
	case "":
		s.Backend = BackendBolt
	case BackendBolt, BackendPostgres:
	default:
		bad("storage.backend %q: unknown backend, must be %s or %s", s.Backend, BackendBolt, BackendPostgres)
	}
	p := s.Postgres
	switch {
	case s.Backend == BackendPostgres && strings.TrimSpace(p.DSN) == "":
		bad("storage.postgres.dsn: must be set when storage.backend is postgres")
	case s.Backend == BackendBolt && p.DSN != "":
		// Data meant for the shared database would silently go to a local
		// file (on Kubernetes, one that a rollout may throw away).
		bad("storage.postgres.dsn is set but storage.backend is bolt: set storage.backend: postgres, or remove the dsn")
	case p.DSN != "":
		if err := checkDSN(p.DSN); err != nil {
			bad("storage.postgres.dsn: %v", err)
		}
	}
	if p.MaxConns < 1 {
		bad("storage.postgres.max_conns %d: must be positive", p.MaxConns)
	}
	if p.ConnectTimeout <= 0 {
		bad("storage.postgres.connect_timeout %s: must be positive", p.ConnectTimeout.D())
	}
}

// RedactedDSN returns the DSN with its password, if any, replaced by
// "xxxxx", for logs and for check-config. A DSN that does not parse comes
// back as a placeholder rather than as written.
func (p PostgresStorage) RedactedDSN() string {
	const hidden = "xxxxx"
	if isURLDSN(p.DSN) {
		u, err := url.Parse(p.DSN)
		if err != nil {
			return "(a DSN that does not parse)"
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), hidden)
		}
		if q := u.Query(); q.Has("password") {
			q.Set("password", hidden)
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	kvs, err := parseKeywordDSN(p.DSN)
	if err != nil {
		return "(a DSN that does not parse)"
	}
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		if kv[0] == "password" {
			kv[1] = hidden
		}
		parts[i] = kv[0] + "=" + quoteDSNValue(kv[1])
	}
	return strings.Join(parts, " ")
}

// checkDSN reports whether dsn has the shape of a libpq connection string;
// the driver reads it in full when the store opens. Its errors never quote
// the DSN.
func checkDSN(dsn string) error {
	if isURLDSN(dsn) {
		if u, err := url.Parse(dsn); err != nil || u.Opaque != "" {
			return errors.New("not a valid postgres:// URL")
		}
		return nil
	}
	if _, err := parseKeywordDSN(dsn); err != nil {
		return err
	}
	return nil
}

func isURLDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// parseKeywordDSN splits a keyword=value connection string (libpq §34.1.1:
// values may be single-quoted, with \' and \\ inside) into its pairs.
func parseKeywordDSN(s string) ([][2]string, error) {
	var out [][2]string
	for {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return nil, errors.New("want a postgres:// URL or keyword=value pairs")
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" || strings.ContainsAny(key, " \t\n\r\f\v'") {
			return nil, errors.New("want a postgres:// URL or keyword=value pairs")
		}
		s = strings.TrimLeft(s[eq+1:], " \t\n\r\f\v")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			s = s[1:]
			closed := false
			for len(s) > 0 && !closed {
				switch c := s[0]; {
				case c == '\\' && len(s) > 1:
					val.WriteByte(s[1])
					s = s[2:]
				case c == '\'':
					closed = true
					s = s[1:]
				default:
					val.WriteByte(c)
					s = s[1:]
				}
			}
			if !closed {
				return nil, errors.New("a quoted value is not closed")
			}
		} else {
			i := 0
			for ; i < len(s) && !strings.ContainsRune(" \t\n\r\f\v", rune(s[i])); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++ // an escaped character, a space among them
				}
				val.WriteByte(s[i])
			}
			s = s[i:]
		}
		out = append(out, [2]string{key, val.String()})
	}
}

// quoteDSNValue writes v as a keyword=value connection string needs it.
func quoteDSNValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r\f\v'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
