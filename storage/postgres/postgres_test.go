package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage/postgres"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// One PostgreSQL server for the package's tests; each has a database of
// its own.
func TestMain(m *testing.M) { pgtest.Main(m) }

// syncBuffer is a log destination for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func open(t *testing.T, dsn string, log *syncBuffer) (*postgres.DB, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := postgres.Open(ctx, config.PostgresStorage{DSN: dsn, MaxConns: 4, ConnectTimeout: config.Duration(5 * time.Second)},
		postgres.WithLogger(slog.New(slog.NewTextHandler(log, nil))))
	if err == nil {
		t.Cleanup(db.Close)
	}
	return db, err
}

func mustOpen(t *testing.T, dsn string, log *syncBuffer) *postgres.DB {
	t.Helper()
	db, err := open(t, dsn, log)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// applied returns schema_migrations as "version name applied_at" lines.
func applied(t *testing.T, db *postgres.DB) []string {
	t.Helper()
	rows, err := db.Pool().Query(context.Background(), "SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var v int
		var name string
		var at time.Time
		err := r.Scan(&v, &name, &at)
		return strings.Join([]string{strconv.Itoa(v), name, at.UTC().Format(time.RFC3339Nano)}, " "), err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMigrationFiles(t *testing.T) {
	ms := postgres.Migrations()
	if len(ms) == 0 || ms[0].Version != 1 || ms[0].Name != "init" {
		t.Fatalf("migrations %+v: want 0001_init first", ms)
	}
	for i, m := range ms {
		if m.Version != i+1 {
			t.Fatalf("migration %d has version %d", i, m.Version)
		}
	}
}

func TestOpenMigrates(t *testing.T) {
	dsn := pgtest.Start(t)
	var log syncBuffer
	db := mustOpen(t, dsn, &log)
	ms := postgres.Migrations()
	v, err := db.SchemaVersion(context.Background())
	if err != nil || v != ms[len(ms)-1].Version {
		t.Fatalf("schema version %d, %v; want %d", v, err, ms[len(ms)-1].Version)
	}
	if got := applied(t, db); len(got) != len(ms) {
		t.Fatalf("schema_migrations %q, want %d rows", got, len(ms))
	}
	rows, err := db.Pool().Query(context.Background(),
		"SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"accounts", "adhoc_sessions", "archive", "archive_usage", "muc_archive", "muc_archive_usage", "muc_rooms",
		"offline_messages", "offline_total", "offline_usage", "roster_items", "roster_versions", "schema_migrations", "settings", "user_data"}
	if !slices.Equal(tables, want) {
		t.Fatalf("tables %q\nwant   %q", tables, want)
	}
	if !strings.Contains(log.String(), "schema migrated") {
		t.Fatalf("the migration is not logged: %s", log.String())
	}
}

func TestOpenAgainIsNoop(t *testing.T) {
	dsn := pgtest.Start(t)
	var log syncBuffer
	first := applied(t, mustOpen(t, dsn, &log))
	var again syncBuffer
	db := mustOpen(t, dsn, &again)
	if got := applied(t, db); !slices.Equal(got, first) {
		t.Fatalf("a second Open changed schema_migrations:\n%q\n%q", first, got)
	}
	if strings.Contains(again.String(), "migrated") {
		t.Fatalf("a second Open migrated: %s", again.String())
	}
}

// TestConcurrentOpensMigrateOnce: replicas that start together all open
// the database, and one of them migrates it.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := pgtest.Start(t)
	var log syncBuffer
	const replicas = 4
	dbs := make([]*postgres.DB, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range replicas {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = open(t, dsn, &log)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	if got := applied(t, dbs[0]); len(got) != len(postgres.Migrations()) {
		t.Fatalf("schema_migrations %q, want one row per migration", got)
	}
	if n := strings.Count(log.String(), "schema migrated"); n != 1 {
		t.Fatalf("%d replicas migrated, want 1:\n%s", n, log.String())
	}
}

// TestPasswordFromEnvironment: a role with a password connects with the
// DSN naming only the role and the password in ADHOCD_POSTGRES_PASSWORD,
// which also wins over a wrong one in the DSN; the password is in no log
// line and no error.
func TestPasswordFromEnvironment(t *testing.T) {
	admin := pgtest.Start(t)
	role, password := "adhocd_"+random(t), "pw-"+random(t)
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"CREATE ROLE " + role + " LOGIN PASSWORD '" + password + "'",
		"ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " OWNER TO " + role,
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(ctx)
	u.User = url.User(role)
	dsn := u.String()

	var log syncBuffer
	t.Setenv(config.PostgresPasswordEnv, "")
	if _, err := open(t, dsn, &log); err == nil {
		t.Fatal("the role connected without its password: the cluster does not ask for it")
	}
	u.User = url.UserPassword(role, "wrong-"+password)
	wrong := u.String()
	_, err = open(t, wrong, &log)
	if err == nil {
		t.Fatal("the role connected with a wrong password")
	}
	if strings.Contains(err.Error(), password) {
		t.Fatalf("the error shows the password: %v", err)
	}

	t.Setenv(config.PostgresPasswordEnv, password)
	for _, d := range []string{dsn, wrong} {
		pdb, err := open(t, d, &log)
		if err != nil {
			t.Fatalf("with %s set: %v", config.PostgresPasswordEnv, err)
		}
		var who string
		if err := pdb.Pool().QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != role {
			t.Fatalf("connected as %q, %v; want %q", who, err, role)
		}
	}
	if strings.Contains(log.String(), password) {
		t.Fatalf("the log shows the password:\n%s", log.String())
	}
}

func TestOpenErrorsHideTheDSN(t *testing.T) {
	var log syncBuffer
	for _, dsn := range []string{
		"postgres://adhocd:s3cr3t@127.0.0.1:5432/%zz",
		"host=127.0.0.1 password='s3cr3t",
		"postgres://adhocd:s3cr3t@127.0.0.1:5432/adhocd?pool_max_conns=many",
	} {
		_, err := open(t, dsn, &log)
		if err == nil {
			t.Fatalf("%q opened", dsn)
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Fatalf("the error shows the password: %v", err)
		}
	}
}

func TestRefusesADatabaseNotInUTF8(t *testing.T) {
	admin := pgtest.Start(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := "ascii_" + random(t)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" ENCODING 'SQL_ASCII' TEMPLATE template0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)") })
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	var log syncBuffer
	if _, err := open(t, u.String(), &log); err == nil || !strings.Contains(err.Error(), "needs UTF8") {
		t.Fatalf("a SQL_ASCII database: %v, want a refusal naming UTF8", err)
	}
}

// TestUsageCountersFollowRows: the schema's counters of offline messages
// and archives stay exact whatever removes the rows, a cascade from a
// deleted account among them.
func TestUsageCountersFollowRows(t *testing.T) {
	db := mustOpen(t, pgtest.Start(t), &syncBuffer{})
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	counts := func(sql string, args ...any) [2]int64 {
		t.Helper()
		var c [2]int64
		if err := db.Pool().QueryRow(ctx, sql, args...).Scan(&c[0], &c[1]); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return c
	}
	total := func() [2]int64 { return counts("SELECT messages, bytes FROM offline_total") }
	user := func(u string) [2]int64 {
		return counts("SELECT coalesce(sum(messages), 0), coalesce(sum(bytes), 0) FROM offline_usage WHERE username = $1", u)
	}
	archived := func(u string) [2]int64 {
		return counts("SELECT coalesce(sum(messages), 0), coalesce(sum(bytes), 0) FROM archive_usage WHERE username = $1", u)
	}
	for _, u := range []string{"alice", "bob"} {
		exec("INSERT INTO accounts (username, created) VALUES ($1, now())", u)
	}
	exec("INSERT INTO offline_messages (username, stamp, xml) VALUES ('alice', now(), '<m>1</m>'), ('alice', now(), '<m>22</m>'), ('bob', now(), 'é')")
	if a, b, tot := user("alice"), user("bob"), total(); a != [2]int64{2, 17} || b != [2]int64{1, 2} || tot != [2]int64{3, 19} {
		t.Fatalf("after inserts: alice %v bob %v total %v", a, b, tot)
	}
	exec("DELETE FROM offline_messages WHERE username = 'alice' AND xml = '<m>1</m>'")
	if a, tot := user("alice"), total(); a != [2]int64{1, 9} || tot != [2]int64{2, 11} {
		t.Fatalf("after a take: alice %v total %v", a, tot)
	}
	exec("INSERT INTO archive (username, id, stamp, with_jid, xml) VALUES ('alice', 1, now(), 'bob@example.org/phone', '<m/>'), ('alice', 2, now(), 'bob@example.org', '<m/>')")
	if a := archived("alice"); a != [2]int64{2, 21 + 15 + 8} {
		t.Fatalf("archive of alice %v", a)
	}
	var bare string
	if err := db.Pool().QueryRow(ctx, "SELECT with_bare FROM archive WHERE id = 1").Scan(&bare); err != nil || bare != "bob@example.org" {
		t.Fatalf("with_bare %q, %v", bare, err)
	}
	exec("DELETE FROM accounts WHERE username = 'alice'")
	if tot, a := total(), archived("alice"); tot != [2]int64{1, 2} || a != [2]int64{} {
		t.Fatalf("after alice's account went: total %v, her archive %v", tot, a)
	}
	var left int
	if err := db.Pool().QueryRow(ctx, "SELECT (SELECT count(*) FROM offline_messages WHERE username = 'alice') + (SELECT count(*) FROM archive WHERE username = 'alice')").Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d rows of alice's left, %v", left, err)
	}
}

// TestOrderIsBytes: usernames and user-data keys order as bytes, as the
// bbolt store has them, and a key prefix is a range of the primary key.
func TestOrderIsBytes(t *testing.T) {
	db := mustOpen(t, pgtest.Start(t), &syncBuffer{})
	ctx := context.Background()
	for _, u := range []string{"é", "b", "B", "a"} {
		if _, err := db.Pool().Exec(ctx, "INSERT INTO accounts (username, created) VALUES ($1, now())", u); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := db.Pool().Query(ctx, "SELECT username FROM accounts ORDER BY username")
	users, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || !slices.Equal(users, []string{"B", "a", "b", "é"}) {
		t.Fatalf("usernames in order %q, %v", users, err)
	}
	for _, k := range []string{"node\x00item", "node\x00", "node", "node\x01", "node\x00\xff", "nod"} {
		if _, err := db.Pool().Exec(ctx, "INSERT INTO user_data (username, bucket, key, value) VALUES ('a', 'pep', $1, '')", []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	// The prefix "node\x00": from it up to "node\x01", excluded.
	rows, _ = db.Pool().Query(ctx, "SELECT key FROM user_data WHERE username = 'a' AND bucket = 'pep' AND key >= $1 AND key < $2 ORDER BY key",
		[]byte("node\x00"), []byte("node\x01"))
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range keys {
		got = append(got, string(k))
	}
	if want := []string{"node\x00", "node\x00item", "node\x00\xff"}; !slices.Equal(got, want) {
		t.Fatalf("keys with the prefix %q, want %q", got, want)
	}
}

func random(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
