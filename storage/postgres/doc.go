// Package postgres is the foundation of adhocd's PostgreSQL backend
// (storage.backend: postgres): the database that several replicas share,
// where the bbolt file serves one process. Open connects a pgx pool
// (github.com/jackc/pgx/v5) to the database that storage.postgres names and
// brings its schema to this build's version; the stores built on it
// implement storage.Store and the ad-hoc session store over that pool.
//
// # Migrations
//
// The schema is the numbered SQL files of migrations/, embedded in the
// binary. At every start Open takes a transaction-level advisory lock
// (pg_advisory_xact_lock), creates schema_migrations if needed, and runs
// the files it does not list, all in that one transaction: PostgreSQL's DDL
// is transactional, so a failed migration leaves the schema as it was, and
// replicas that start together wait for the first one and then find nothing
// to do. (A future step that cannot run in a transaction, CREATE INDEX
// CONCURRENTLY, needs a step of its own outside it.) The tables are made in
// the first schema of the connection's search_path, public by default; the
// role needs to be allowed to create there (since PostgreSQL 15, public
// allows that only to the database's owner).
//
// # Schema (0001_init.sql)
//
// Each table of the bbolt store's buckets, in the same order and keyed the
// same way:
//
//   - accounts (username PK): the Account fields, the SCRAM-SHA-1 and
//     SCRAM-SHA-256 credentials one column per field (salt, iterations,
//     stored key, server key; never a password), the times as timestamptz
//     (NULL for Go's zero time).
//   - roster_versions (username PK → accounts): each roster's version;
//     roster_items (username → accounts, jid; PK both): one row per
//     contact, groups as text[], with an index on jid to find the rosters
//     that hold a deleted account.
//   - settings (key PK, value bytea).
//   - offline_messages (username → accounts, id from a sequence; PK both),
//     with an index on stamp for expiry; offline_usage (username PK →
//     accounts) and the one row of offline_total count their messages and
//     bytes for the quotas.
//   - user_data (username → accounts, bucket, key bytea; PK the three):
//     what modules keep. bytea because keys hold NUL bytes (PEP keys are
//     node NUL item); bytea orders as bbolt does, so a key prefix is a range
//     of the primary key.
//   - archive (username → accounts, id bigint; PK both): the message
//     archive, with the stamp, the other party's JID (with_jid) and its bare
//     JID (with_bare, a generated column), indexed by (username, with_bare,
//     id) for queries filtered by a JID and by stamp for expiry;
//     archive_usage (username PK → accounts) counts each archive.
//   - adhoc_sessions (id PK): the XEP-0050 sessions every replica sees,
//     with a revision for optimistic updates and an ended flag for
//     tombstones; indexed by owner and by expiry.
//
// And from 0002_muc.sql, the group chat service's:
//
//   - muc_rooms (service, room; PK both): each persistent room's state as
//     the module wrote it (bytea, read by no query).
//   - muc_archive (service, room → muc_rooms, id; PK the three): each
//     room's archive, laid out as an account's (stamp, with_jid, with_bare,
//     xml; the same indexes); muc_archive_usage (service, room →
//     muc_rooms) counts its messages. Deleting a room's row deletes its
//     archive (ON DELETE CASCADE).
//
// Why so: names compared or ordered (usernames, JIDs, buckets, setting
// keys, session ids) are text COLLATE "C", which compares bytes as bbolt
// does, whatever locale the database was made with, and lets a B-tree serve
// ranges. Stanzas are text (XML has no NUL and is valid UTF-8), which is
// why Open refuses a database whose encoding is not UTF8. Every table of an
// account's data references accounts ON DELETE CASCADE, so deleting the
// account's row deletes all of it in one statement; the items naming it in
// other rosters are the store's to remove (and report). The usage counters
// are kept by statement-level triggers on the rows they count, in the same
// transaction: exact whatever deletes the rows (taking, expiry, trimming, a
// cascade), with no bookkeeping in the store's Go code, one update per
// account per statement. Timestamps are microseconds, Go's are
// nanoseconds: a time read back is the time written truncated to the
// microsecond (archive ids keep their nanoseconds: they are the bigint).
package postgres
