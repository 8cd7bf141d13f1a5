package storage

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Moving a whole store into another one, of another backend (adhocd
// migrate bolt-to-postgres): an Exporter reads everything without
// changing it, an Importer writes it back as it was, archived messages
// with their ids and stamps (clients that synced their archive by
// XEP-0313 id go on from where they were), rosters with their versions
// (XEP-0237 clients keep their cache). The Store interface alone would not
// do: TakeOffline deletes what it reads, AppendArchive makes new ids, and
// nothing lists the settings or an account's user data buckets.
//
// The group chat service's stored rooms move with their archives, after
// the accounts.
//
// What is not moved: ad-hoc command sessions in progress (adhoc.persist),
// which end with the move, and login times waiting to be written (Close
// the source first: it writes them).

// AccountData is everything a store keeps for one account but its
// archive, which is moved page by page (QueryArchive, ImportArchive).
type AccountData struct {
	Account       Account
	Roster        []RosterItem
	RosterVersion uint64
	// Offline holds the offline messages, oldest first.
	Offline []OfflineMessage
	// UserData holds the account's entries by bucket, each ordered by key.
	UserData map[string][]Datum
}

// Exporter reads all of a store without changing it.
type Exporter interface {
	// AllSettings returns every setting.
	AllSettings(ctx context.Context) (map[string][]byte, error)
	// ExportAccount returns what the account keeps but its archive, as
	// one consistent read; ErrNotFound if there is no such account.
	ExportAccount(ctx context.Context, username string) (AccountData, error)
	// ExportRooms returns every stored room of every service, ordered by
	// service and name (their archives are read with QueryRoomArchive).
	ExportRooms(ctx context.Context) ([]StoredRoom, error)
}

// Importer writes what an Exporter read, as it was.
type Importer interface {
	// ImportAccount creates the account with all of d, in one
	// transaction; ErrExists if the account exists (nothing changes).
	ImportAccount(ctx context.Context, d AccountData) error
	// ImportArchive adds msgs (as QueryArchive returned them, oldest
	// first) to the account's archive with their ids and stamps; a
	// message whose id the archive holds already is skipped. No quota
	// applies: the source kept them.
	ImportArchive(ctx context.Context, username string, msgs []ArchivedMessage) error
	// ImportRoom stores the room as it is; ErrExists if a room of that
	// service and name is stored (nothing changes).
	ImportRoom(ctx context.Context, r StoredRoom) error
	// ImportRoomArchive adds msgs to the stored room's archive as
	// ImportArchive adds an account's; ErrNotFound if the room is not
	// stored.
	ImportRoomArchive(ctx context.Context, service, room string, msgs []ArchivedMessage) error
}

// TransferReport counts what Transfer moved.
type TransferReport struct {
	Settings int
	// Accounts were created; Existing were there already (their archive
	// was completed, the rest left as it is).
	Accounts, Existing int
	RosterItems        int
	Offline            int
	UserData           int
	Archived           int
	// Rooms were created; RoomsExisting were there already (their
	// archive was completed); RoomArchived counts their messages copied.
	Rooms, RoomsExisting int
	RoomArchived         int
}

// transferPage is how many archived messages move at once.
const transferPage = 500

// Transfer copies every setting and account of from into to. It can run
// again after it stopped half way: settings are written over, accounts
// that exist in to are left as they are but for their archive, whose
// missing messages are added. progress, if not nil, is called after each
// account with what is done so far.
func Transfer(ctx context.Context, from Store, to Store, progress func(TransferReport)) (TransferReport, error) {
	var r TransferReport
	ex, ok := from.(Exporter)
	if !ok {
		return r, errors.New("storage: the source store cannot export its data")
	}
	im, ok := to.(Importer)
	if !ok {
		return r, errors.New("storage: the destination store cannot import data")
	}
	settings, err := ex.AllSettings(ctx)
	if err != nil {
		return r, err
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := to.PutSetting(ctx, k, settings[k]); err != nil {
			return r, fmt.Errorf("storage: transfer setting %q: %w", k, err)
		}
		r.Settings++
	}
	accounts, err := from.Accounts(ctx)
	if err != nil {
		return r, err
	}
	for _, a := range accounts {
		d, err := ex.ExportAccount(ctx, a.Username)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return r, err
		}
		switch err := im.ImportAccount(ctx, d); {
		case errors.Is(err, ErrExists):
			r.Existing++
		case err != nil:
			return r, fmt.Errorf("storage: transfer account %q: %w", a.Username, err)
		default:
			r.Accounts++
			r.RosterItems += len(d.Roster)
			r.Offline += len(d.Offline)
			for _, ds := range d.UserData {
				r.UserData += len(ds)
			}
		}
		n, err := transferArchive(ctx, from, im, a.Username)
		r.Archived += n
		if err != nil {
			return r, err
		}
		if progress != nil {
			progress(r)
		}
	}
	rooms, err := ex.ExportRooms(ctx)
	if err != nil {
		return r, err
	}
	for _, room := range rooms {
		switch err := im.ImportRoom(ctx, room); {
		case errors.Is(err, ErrExists):
			r.RoomsExisting++
		case err != nil:
			return r, fmt.Errorf("storage: transfer room %q of %q: %w", room.Name, room.Service, err)
		default:
			r.Rooms++
		}
		n, err := transferPages(ctx, func(q ArchiveQuery) ([]ArchivedMessage, bool, error) {
			return from.QueryRoomArchive(ctx, room.Service, room.Name, q)
		}, func(msgs []ArchivedMessage) error {
			return im.ImportRoomArchive(ctx, room.Service, room.Name, msgs)
		})
		r.RoomArchived += n
		if err != nil {
			return r, fmt.Errorf("storage: transfer the archive of room %q of %q: %w", room.Name, room.Service, err)
		}
	}
	if progress != nil && len(rooms) > 0 {
		progress(r)
	}
	return r, nil
}

// transferArchive copies one account's archive, page by page, oldest
// first.
func transferArchive(ctx context.Context, from Store, to Importer, username string) (int, error) {
	n, err := transferPages(ctx, func(q ArchiveQuery) ([]ArchivedMessage, bool, error) {
		return from.QueryArchive(ctx, username, q)
	}, func(msgs []ArchivedMessage) error {
		return to.ImportArchive(ctx, username, msgs)
	})
	if err != nil {
		return n, fmt.Errorf("storage: transfer the archive of %q: %w", username, err)
	}
	return n, nil
}

// transferPages copies an archive page by page, oldest first: query reads
// a page, put writes it.
func transferPages(ctx context.Context, query func(ArchiveQuery) ([]ArchivedMessage, bool, error), put func([]ArchivedMessage) error) (int, error) {
	n := 0
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		page, complete, err := query(ArchiveQuery{AfterID: after, Max: transferPage})
		if err != nil {
			return n, err
		}
		if len(page) > 0 {
			if err := put(page); err != nil {
				return n, err
			}
			n += len(page)
			after = page[len(page)-1].ID
		}
		if complete || len(page) == 0 {
			return n, nil
		}
	}
}
