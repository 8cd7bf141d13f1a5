-- 0002_muc: the group chat service's persistent rooms and their archives
-- (storage.Rooms, storage.RoomArchive).
--
-- A room is named by its service's domain and its JID's local part, text
-- COLLATE "C" as the other names (0001_init). Rooms belong to no account:
-- their rows refer to none.

-- muc_rooms: one row per stored room; state is the document the module
-- keeps (modules/muc's JSON), stored as it is.
CREATE TABLE muc_rooms (
    service text COLLATE "C" NOT NULL CHECK (service <> ''),
    room    text COLLATE "C" NOT NULL CHECK (room <> ''),
    state   bytea NOT NULL,
    PRIMARY KEY (service, room)
);

-- muc_archive: each stored room's archive (XEP-0313 on the room's JID),
-- laid out as an account's (archive in 0001_init): id time-ordered and
-- unique per room, stamp the id's time, with_jid the occupant's room JID
-- (room@service/nick) or the room's own. Deleting the room's row deletes
-- its archive (and its usage row) in the same statement.
CREATE TABLE muc_archive (
    service   text COLLATE "C" NOT NULL,
    room      text COLLATE "C" NOT NULL,
    id        bigint NOT NULL,
    stamp     timestamptz NOT NULL,
    with_jid  text COLLATE "C" NOT NULL,
    with_bare text COLLATE "C" NOT NULL GENERATED ALWAYS AS (split_part(with_jid, '/', 1)) STORED,
    xml       text NOT NULL,
    PRIMARY KEY (service, room, id),
    FOREIGN KEY (service, room) REFERENCES muc_rooms ON DELETE CASCADE
);
-- A query with a JID, paged by id.
CREATE INDEX muc_archive_with ON muc_archive (service, room, with_bare, id);
-- ExpireRoomArchives: the oldest of every room.
CREATE INDEX muc_archive_stamp ON muc_archive (stamp);

-- muc_archive_usage: the messages of each room's archive, for the
-- MaxMessages trimming, kept by triggers as archive_usage is. A row stays
-- at 0; it goes with the room.
CREATE TABLE muc_archive_usage (
    service  text COLLATE "C" NOT NULL,
    room     text COLLATE "C" NOT NULL,
    messages bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (service, room),
    FOREIGN KEY (service, room) REFERENCES muc_rooms ON DELETE CASCADE
);

CREATE FUNCTION muc_archive_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO muc_archive_usage AS u (service, room, messages)
        SELECT service, room, count(*) FROM added
        GROUP BY service, room ORDER BY service, room
        ON CONFLICT (service, room) DO UPDATE SET messages = u.messages + excluded.messages;
    RETURN NULL;
END $$;

CREATE FUNCTION muc_archive_count_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Rows of rooms being deleted are gone already (their cascade).
    PERFORM 1 FROM muc_archive_usage WHERE (service, room) IN (SELECT service, room FROM gone)
        ORDER BY service, room FOR UPDATE;
    UPDATE muc_archive_usage u
        SET messages = greatest(u.messages - g.n, 0)
        FROM (SELECT service, room, count(*) AS n FROM gone GROUP BY service, room) g
        WHERE u.service = g.service AND u.room = g.room;
    RETURN NULL;
END $$;

CREATE TRIGGER muc_archive_added AFTER INSERT ON muc_archive
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION muc_archive_count_added();
CREATE TRIGGER muc_archive_gone AFTER DELETE ON muc_archive
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION muc_archive_count_gone();
