-- 0001_init: every table of storage.Store, and the ad-hoc sessions.
--
-- Names that the server compares or orders (usernames, JIDs, bucket and
-- setting names, session ids) are text COLLATE "C": equality and order by
-- bytes, as the bbolt store has them, whatever the database's locale; an
-- index then serves prefix and range scans. What a module keeps is bytea
-- (user data keys hold NUL bytes: a PEP item is node NUL id). Stanzas are
-- text: XML holds neither NUL nor invalid UTF-8, and the database is UTF8
-- (Open checks).
--
-- Every table of one account's data refers to accounts with ON DELETE
-- CASCADE: deleting the account row deletes its roster, offline messages,
-- user data and archive in the same statement. The items for it in other
-- accounts' rosters are not its data: DeleteAccount removes them itself
-- (roster_items_jid finds them).
--
-- Usage counters (offline_usage, offline_total, archive_usage) are kept by
-- triggers on the rows they count, so they are exact however rows go:
-- TakeOffline, expiry, quota trimming, or a cascade from accounts. Rows of
-- offline_messages and archive are inserted and deleted, never updated
-- (and never truncated) by the store.

-- accounts: one row per local user (storage.Account). The SCRAM
-- credentials (RFC 5802 salted keys, never a password) of SCRAM-SHA-1 and
-- SCRAM-SHA-256, one column per field.
CREATE TABLE accounts (
    username         text COLLATE "C" PRIMARY KEY CHECK (username <> ''),
    sha1_salt        bytea   NOT NULL DEFAULT '',
    sha1_iterations  integer NOT NULL DEFAULT 0,
    sha1_stored_key  bytea   NOT NULL DEFAULT '',
    sha1_server_key  bytea   NOT NULL DEFAULT '',
    sha256_salt       bytea   NOT NULL DEFAULT '',
    sha256_iterations integer NOT NULL DEFAULT 0,
    sha256_stored_key bytea   NOT NULL DEFAULT '',
    sha256_server_key bytea   NOT NULL DEFAULT '',
    created          timestamptz NOT NULL,
    disabled         boolean NOT NULL DEFAULT false,
    -- NULL: never (Go's zero time).
    last_login       timestamptz,
    last_logout      timestamptz,
    motd_seen        bigint  NOT NULL DEFAULT 0,
    welcome_pending  boolean NOT NULL DEFAULT false
);

-- roster_versions: each account's roster version (RFC 6121 §2.6), bumped
-- by every change of its roster. Apart from accounts so that a roster
-- change and a login time do not wait for each other's row lock; a roster
-- never changed has no row (version 0).
CREATE TABLE roster_versions (
    username text COLLATE "C" PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    version  bigint NOT NULL
);

-- roster_items: one row per contact of a roster (storage.RosterItem);
-- Roster reads them in the primary key's order, by JID.
CREATE TABLE roster_items (
    username        text COLLATE "C" NOT NULL REFERENCES accounts ON DELETE CASCADE,
    jid             text COLLATE "C" NOT NULL,
    name            text    NOT NULL DEFAULT '',
    subscription    text    NOT NULL DEFAULT 'none' CHECK (subscription IN ('none', 'to', 'from', 'both')),
    ask_out         boolean NOT NULL DEFAULT false,
    pending_in      boolean NOT NULL DEFAULT false,
    pending_content text    NOT NULL DEFAULT '',
    hidden          boolean NOT NULL DEFAULT false,
    groups          text[]  NOT NULL DEFAULT '{}',
    PRIMARY KEY (username, jid)
);
-- The rosters that hold a JID, for DeleteAccount.
CREATE INDEX roster_items_jid ON roster_items (jid);

-- settings: small server-wide values (storage.Setting): the MOTD, the
-- welcome message, admins, access lists, the ad-hoc session-id secret.
CREATE TABLE settings (
    key   text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

-- offline_messages: messages kept for an account without an available
-- resource (XEP-0160), in arrival order (id, from the sequence) per account.
CREATE TABLE offline_messages (
    username text COLLATE "C" NOT NULL REFERENCES accounts ON DELETE CASCADE,
    id       bigint GENERATED ALWAYS AS IDENTITY,
    stamp    timestamptz NOT NULL,
    xml      text NOT NULL,
    PRIMARY KEY (username, id)
);
-- ExpireOffline: the oldest of every account.
CREATE INDEX offline_messages_stamp ON offline_messages (stamp);

-- offline_usage: what each account's offline messages take (a message
-- counts the bytes of its xml), for storage.OfflineQuota's per-account
-- bounds. StoreOffline locks the account's row (INSERT … ON CONFLICT DO
-- NOTHING, then SELECT … FOR UPDATE) to check and store at once. A row at 0
-- stays.
CREATE TABLE offline_usage (
    username text COLLATE "C" PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    messages bigint NOT NULL DEFAULT 0,
    bytes    bigint NOT NULL DEFAULT 0
);

-- offline_total: the one row of what all offline messages take
-- (OfflineQuota.MaxTotalBytes, OfflineUsageReporter). Every change of
-- offline messages updates it: offline storage is serialised on this row,
-- which the rare, small writes of offline messages afford.
CREATE TABLE offline_total (
    one      boolean PRIMARY KEY DEFAULT true CHECK (one),
    messages bigint NOT NULL DEFAULT 0,
    bytes    bigint NOT NULL DEFAULT 0
);
INSERT INTO offline_total DEFAULT VALUES;

-- Lock order, here and in the store: offline_usage rows (by username),
-- then offline_total.
CREATE FUNCTION offline_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM added) THEN
        RETURN NULL;
    END IF;
    INSERT INTO offline_usage AS u (username, messages, bytes)
        SELECT username, count(*), sum(octet_length(xml)) FROM added GROUP BY username ORDER BY username
        ON CONFLICT (username) DO UPDATE
            SET messages = u.messages + excluded.messages, bytes = u.bytes + excluded.bytes;
    UPDATE offline_total
        SET messages = messages + a.n, bytes = bytes + a.b
        FROM (SELECT count(*) AS n, sum(octet_length(xml)) AS b FROM added) a;
    RETURN NULL;
END $$;

CREATE FUNCTION offline_count_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM gone) THEN
        RETURN NULL;
    END IF;
    -- Rows of accounts being deleted are gone already (their cascade):
    -- nothing to update there.
    PERFORM 1 FROM offline_usage WHERE username IN (SELECT username FROM gone)
        ORDER BY username FOR UPDATE;
    UPDATE offline_usage u
        SET messages = greatest(u.messages - g.n, 0), bytes = greatest(u.bytes - g.b, 0)
        FROM (SELECT username, count(*) AS n, sum(octet_length(xml)) AS b FROM gone GROUP BY username) g
        WHERE u.username = g.username;
    UPDATE offline_total
        SET messages = greatest(messages - g.n, 0), bytes = greatest(bytes - g.b, 0)
        FROM (SELECT count(*) AS n, sum(octet_length(xml)) AS b FROM gone) g;
    RETURN NULL;
END $$;

CREATE TRIGGER offline_added AFTER INSERT ON offline_messages
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION offline_count_added();
CREATE TRIGGER offline_gone AFTER DELETE ON offline_messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION offline_count_gone();

-- user_data: what modules keep per account (storage.UserData): vCards,
-- private XML, blocklists, PEP nodes and items. The primary key's order is
-- bbolt's: bytea compares as bytes, so a prefix is a range (key >= prefix
-- AND key < the prefix with its last byte below 0xff incremented and what
-- follows it dropped; no upper bound when it is all 0xff).
CREATE TABLE user_data (
    username text COLLATE "C" NOT NULL REFERENCES accounts ON DELETE CASCADE,
    bucket   text COLLATE "C" NOT NULL,
    key      bytea NOT NULL CHECK (octet_length(key) > 0),
    value    bytea NOT NULL,
    PRIMARY KEY (username, bucket, key)
);

-- archive: each account's message archive (XEP-0313, storage.Archive).
-- id is the archive's id, time-ordered (nanoseconds since the epoch, made
-- increasing by the process that archives; rendered as 16 hex digits),
-- unique per account; stamp is when it was archived (the id's time, to the
-- microsecond). with_bare is with_jid without its resource.
CREATE TABLE archive (
    username  text COLLATE "C" NOT NULL REFERENCES accounts ON DELETE CASCADE,
    id        bigint NOT NULL,
    stamp     timestamptz NOT NULL,
    with_jid  text COLLATE "C" NOT NULL,
    with_bare text COLLATE "C" NOT NULL GENERATED ALWAYS AS (split_part(with_jid, '/', 1)) STORED,
    xml       text NOT NULL,
    PRIMARY KEY (username, id)
);
-- A query with a bare or full JID (with_bare = bare of the filter, and for
-- a full one with_jid = it), paged by id. A domain filter walks the primary
-- key, as the bbolt store walks its bucket.
CREATE INDEX archive_with ON archive (username, with_bare, id);
-- ExpireArchive: the oldest of every account.
CREATE INDEX archive_stamp ON archive (stamp);

-- archive_usage: the messages and bytes of each account's archive
-- (ArchiveSize, ArchiveUsage, the MaxMessages trimming); a message counts
-- the bytes of its with_jid and xml.
CREATE TABLE archive_usage (
    username text COLLATE "C" PRIMARY KEY REFERENCES accounts ON DELETE CASCADE,
    messages bigint NOT NULL DEFAULT 0,
    bytes    bigint NOT NULL DEFAULT 0
);

CREATE FUNCTION archive_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO archive_usage AS u (username, messages, bytes)
        SELECT username, count(*), sum(octet_length(with_jid) + octet_length(xml)) FROM added
        GROUP BY username ORDER BY username
        ON CONFLICT (username) DO UPDATE
            SET messages = u.messages + excluded.messages, bytes = u.bytes + excluded.bytes;
    RETURN NULL;
END $$;

CREATE FUNCTION archive_count_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM archive_usage WHERE username IN (SELECT username FROM gone)
        ORDER BY username FOR UPDATE;
    UPDATE archive_usage u
        SET messages = greatest(u.messages - g.n, 0), bytes = greatest(u.bytes - g.b, 0)
        FROM (SELECT username, count(*) AS n, sum(octet_length(with_jid) + octet_length(xml)) AS b
              FROM gone GROUP BY username) g
        WHERE u.username = g.username;
    RETURN NULL;
END $$;

CREATE TRIGGER archive_added AFTER INSERT ON archive
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION archive_count_added();
CREATE TRIGGER archive_gone AFTER DELETE ON archive
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION archive_count_gone();

-- adhoc_sessions: XEP-0050 command sessions shared by every replica, so
-- that a client continues on another replica a session begun on one. data
-- is the session as the adhoc store encodes it (adhoc.Session as JSON);
-- the columns beside it are what the store selects and locks by. revision
-- counts the changes, for an optimistic update (UPDATE … WHERE id = $1 AND
-- revision = $2). An ended session may stay as a tombstone (ended) until
-- it expires, so that every replica answers its id as ended. Owner is a
-- bare JID, not necessarily a local account's: no reference to accounts
-- (EndOwner removes an account's sessions).
CREATE TABLE adhoc_sessions (
    id        text COLLATE "C" PRIMARY KEY,
    owner     text COLLATE "C" NOT NULL,
    requester text COLLATE "C" NOT NULL,
    node      text NOT NULL,
    revision  bigint NOT NULL DEFAULT 1,
    ended     boolean NOT NULL DEFAULT false,
    expires   timestamptz NOT NULL,
    data      bytea NOT NULL
);
-- The per-owner cap and EndOwner.
CREATE INDEX adhoc_sessions_owner ON adhoc_sessions (owner);
-- The sweep of expired sessions.
CREATE INDEX adhoc_sessions_expires ON adhoc_sessions (expires);
