package muc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
)

// Persistent rooms are in the store (storage.Rooms) under the service's
// domain and their name, each as its State in JSON but for its history
// (which the room's archive gives back, archive.go) and its lock (a
// persistent room is configured, so unlocked). The module writes a room's
// state when a change of it is decided, before anyone sees the change: a
// configuration (the room made persistent, changed, made temporary again,
// which removes it from the store), affiliations (muc#admin, a mediated
// invitation to a members-only room), the subject, and removes it when the
// room is destroyed. A change the store refuses is not made: its author
// gets resource-constraint when the disk is below the store's floor,
// internal-server-error otherwise. At Start every stored room is loaded,
// without occupants: they count towards Options.MaxRooms and, for their
// creators, MaxRoomsPerUser.
//
// The occupant id key is a setting (keyOccupantID and the service's
// domain), made at the first start: a user's XEP-0421 id in a room stays
// the same across restarts.

// keyOccupantID prefixes the setting that holds the service's occupant id
// key.
const keyOccupantID = "muc.occupant_id_key:"

// load reads the occupant id key (making it the first time) and the stored
// rooms.
func (m *Module) load(ctx context.Context) error {
	key, err := m.store.Setting(ctx, keyOccupantID+m.domain.Domainpart())
	switch {
	case errors.Is(err, storage.ErrNotFound) || err == nil && len(key) != 32:
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("muc: occupant id key: %w", err)
		}
		if err := m.store.PutSetting(ctx, keyOccupantID+m.domain.Domainpart(), key); err != nil {
			return fmt.Errorf("muc: occupant id key: %w", err)
		}
	case err != nil:
		return fmt.Errorf("muc: occupant id key: %w", err)
	}
	m.key = key
	stored, err := m.store.Rooms(ctx, m.domain.Domainpart())
	if err != nil {
		return fmt.Errorf("muc: load the rooms: %w", err)
	}
	for _, sr := range stored {
		r, err := m.decodeRoom(sr)
		if err != nil {
			// One unreadable room does not keep the service from
			// starting; its name is free until it is fixed.
			m.log.Error("muc: room not loaded", "room", sr.Name, "err", err)
			continue
		}
		m.rooms[sr.Name] = r
		m.created[r.Creator]++
	}
	if len(m.rooms) > m.opts.MaxRooms {
		m.log.Warn("muc: more rooms stored than muc.max_rooms; no room is created until some are destroyed",
			"rooms", len(m.rooms), "max_rooms", m.opts.MaxRooms)
	}
	return nil
}

// decodeRoom is a stored room, in the bounds of the service's options
// (which may have changed since it was stored).
func (m *Module) decodeRoom(sr storage.StoredRoom) (*room, error) {
	var st State
	if err := json.Unmarshal(sr.State, &st); err != nil {
		return nil, err
	}
	j, err := jid.New(sr.Name, m.domain.Domainpart(), "")
	if err != nil {
		return nil, err
	}
	st.JID, st.Locked, st.History = j.String(), false, nil
	if st.Affiliations == nil {
		st.Affiliations = map[string]Affiliation{}
	}
	c := &st.Config
	c.Persistent = true // only persistent rooms are stored
	if c.MaxUsers <= 0 || c.MaxUsers > m.opts.MaxOccupants {
		c.MaxUsers = m.opts.MaxOccupants
	}
	c.HistoryLength = min(max(c.HistoryLength, 0), m.opts.HistoryLength)
	if c.Whois != WhoisAnyone {
		c.Whois = WhoisModerators
	}
	switch c.AllowPM {
	case PMAnyone, PMParticipants, PMModerators, PMNone:
	default:
		c.AllowPM = PMAnyone
	}
	return &room{jid: j, occupants: map[string]*occupant{}, State: st, stored: true, archiveOn: m.archives()}, nil
}

// save writes st, the state r is about to take, to the store: the room's
// state when st is persistent, or its removal when it no longer is. r is
// locked; it is not changed. The error is the stanza error for the change's
// author.
func (m *Module) save(ctx context.Context, r *room, st State) error {
	if !st.Config.Persistent {
		return m.forget(ctx, r)
	}
	st.History, st.Locked = nil, false
	b, err := json.Marshal(st)
	if err == nil {
		err = m.store.PutRoom(ctx, m.domain.Domainpart(), r.jid.Localpart(), b)
	}
	if err != nil {
		return m.storeError("store the room", r, err)
	}
	r.stored = true
	return nil
}

// forget removes a room from the store: destroyed, or made temporary.
func (m *Module) forget(ctx context.Context, r *room) error {
	if !r.stored {
		return nil
	}
	if err := m.store.DeleteRoom(ctx, m.domain.Domainpart(), r.jid.Localpart()); err != nil {
		return m.storeError("remove the room", r, err)
	}
	r.stored = false
	return nil
}

// storeError is the stanza error for a change the store refused:
// resource-constraint below the disk floor (or on a full disk),
// internal-server-error (logged) otherwise.
func (m *Module) storeError(what string, r *room, err error) error {
	if errors.Is(err, syscall.ENOSPC) {
		return modules.StanzaError(stanza.Wait, stanza.ResourceConstraint, "the server's storage is full; nothing was changed")
	}
	m.log.Warn("muc: "+what, "room", r.jid.String(), "err", err)
	return modules.StanzaError(stanza.Wait, stanza.InternalServerError, "the room could not be stored; nothing was changed")
}
