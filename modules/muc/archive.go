package muc

import (
	"context"
	"encoding/xml"
	"errors"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/mam"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// A persistent room whose configuration has muc#roomconfig_enablearchiving
// (Config.Archive, on by default) keeps what is said in it in its archive
// (storage.RoomArchive), XEP-0313 on the room's bare JID: every groupchat
// message with a body and every subject change, once, under an id that the
// copies sent to the occupants carry as a XEP-0359 <stanza-id/> by the
// room's JID (one a sender put in with that 'by' is removed), and the
// room's moderation notices (moderate.go). Each is kept as the occupants
// got it, from the sender's room JID, with a muc#user <x/> holding the
// sender's real bare JID, which a query shows only to who may see real JIDs
// (everyone in a non-anonymous room; admins, owners and moderators
// otherwise: XEP-0313 §5.1.2). A temporary room keeps no archive: it ends
// with its occupants.
//
// A query (the form, with, start, end, before-id, after-id, ids, result set
// paging, pages of at most limits.mam.max_page, flipped pages) and the
// archive's metadata are read and answered by the code of modules/mam, the
// account archive's. Who may query is who may enter (XEP-0313 §5.1.2, as
// Prosody's mod_muc_mam): not an outcast, in a members-only room a member
// at least, in a password-protected room an occupant, an admin or an owner.
//
// An archive keeps Options.ArchiveMaxMessages, the oldest going first, and
// each message Options.ArchiveRetention, removed in the background; it goes
// when the room is destroyed or made temporary. A message the archive
// cannot take (the disk below the floor) is relayed all the same, without
// a stanza id. After a restart a room's join history comes back from its
// archive (the last messages with a body, within the room's history
// length); a room that keeps no archive starts with none.

// Namespaces of the archive.
const (
	nsMAM    = mam.NS
	nsMAMExt = mam.NSExtended
	nsSID    = mam.NSStanzaID
)

// expiryBatch is the most archived messages removed in one transaction.
const expiryBatch = 500

// archives reports whether the service archives rooms at all.
func (m *Module) archives() bool { return m.opts.ArchiveMaxMessages > 0 }

// archiving reports whether r keeps an archive now.
func (r *room) archiving() bool {
	return r.archiveOn && r.stored && r.Config.Persistent && r.Config.Archive
}

// archiveFeatures are the disco features of r's archive and of the
// moderation it allows (XEP-0313 §7, XEP-0425 §2).
func (r *room) archiveFeatures() []string {
	if !r.archiving() {
		return nil
	}
	return []string{nsMAM, nsMAMExt, nsSID, nsModerate0, nsModerate1}
}

// archive keeps msg, a groupchat message the room relays from the
// occupant o (nil: the room's own), in r's archive, and returns its id; ""
// when r keeps no archive or the store refused it (logged: the message
// goes out all the same).
func (m *Module) archive(ctx context.Context, r *room, o *occupant, msg wire.Node) string {
	if !r.archiving() {
		return ""
	}
	with := r.jid.String()
	if o != nil {
		with = occupantJID(r, o.nick)
		msg = msg.Add(wire.Elem(nsUser, "x").Add(wire.Elem(nsUser, "item", "jid", o.bare.String())))
	}
	x := wire.Serialize(msg.Tokens(nil), 2*m.opts.MaxMessageBytes+4096)
	if x == "" {
		return ""
	}
	id, err := m.store.AppendRoomArchive(ctx, m.domain.Domainpart(), r.jid.Localpart(),
		storage.ArchivedMessage{With: with, XML: x}, storage.ArchiveQuota{MaxMessages: m.opts.ArchiveMaxMessages})
	if err != nil {
		m.log.Warn("muc: message not archived", "room", r.jid.String(), "err", err)
		return ""
	}
	return id
}

// stanzaID is the XEP-0359 element of a message r archived under id.
func stanzaID(r *room, id string) wire.Node {
	return wire.Elem(nsSID, "stanza-id", "by", r.jid.String(), "id", id)
}

// ownStanzaID reports a <stanza-id/> that claims to be by r, which a
// sender may not put in (XEP-0359 §3.2).
func ownStanzaID(r *room) func(xml.StartElement) bool {
	by := r.jid.String()
	return func(st xml.StartElement) bool {
		return st.Name.Space == nsSID && st.Name.Local == "stanza-id" && wire.AttrOf(st, "by") == by
	}
}

// isUserX reports the muc#user <x/> of an archived message.
func isUserX(n xml.Name) bool { return n.Space == nsUser && n.Local == "x" }

// mayReadArchive is who may query r's archive: who may enter it (see the
// top of the file).
func mayReadArchive(r *room, from jid.JID) error {
	aff := r.affiliation(from.Bare().String())
	switch {
	case aff == Outcast:
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "you are banned from this room")
	case r.Config.MembersOnly && aff.rank() < Member.rank():
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "the archive of a members-only room is for its members")
	case r.Config.Password != "" && aff.rank() < Admin.rank() && r.occupantOf(from) == nil:
		return modules.StanzaError(stanza.Auth, stanza.Forbidden, "the archive of a password-protected room is for its occupants")
	}
	return nil
}

// seesRealJIDs reports whether from may see the real JIDs of r's
// archive: in a non-anonymous room, or as an admin, an owner or an occupant
// who is a moderator.
func seesRealJIDs(r *room, from jid.JID) bool {
	if r.nonAnonymous() || r.affiliation(from.Bare().String()).rank() >= Admin.rank() {
		return true
	}
	o := r.occupantOf(from)
	return o != nil && o.role == Moderator
}

// archiveIQ answers the archive's requests on r's JID: the query form, a
// query (XEP-0313), a moderation (XEP-0425, moderate.go).
func (m *Module) archiveIQ(ctx context.Context, r *room, from jid.JID, typ string, q *wire.Element) ([]wire.Node, error) {
	if q.Start.Name.Space != nsMAM {
		return m.moderate(ctx, r, from, typ, q)
	}
	metadata := typ == "get" && q.Start.Name.Local == "metadata"
	if !r.archiving() || q.Start.Name.Local != "query" && !metadata {
		return nil, unsupported
	}
	if err := mayReadArchive(r, from); err != nil {
		return nil, err
	}
	if metadata {
		return m.archiveMetadata(ctx, r)
	}
	if typ == "get" {
		return []wire.Node{nodeOf(mam.QueryForm())}, nil
	}
	aq, err := mam.ParseQuery(q, max(m.h.Config().Limits.MAM.MaxPage, 1))
	if err != nil {
		return nil, err
	}
	msgs, complete, err := m.store.QueryRoomArchive(ctx, m.domain.Domainpart(), r.jid.Localpart(), aq)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, mam.QueryError(err)
	case err != nil:
		m.log.Warn("muc: query the archive", "room", r.jid.String(), "err", err)
		return nil, modules.StanzaError(stanza.Wait, stanza.InternalServerError, "")
	}
	real := seesRealJIDs(r, from)
	queryID := q.Attr("queryid")
	for _, a := range mam.SendOrder(msgs, mam.Flipped(q)) {
		if !real {
			a.XML = withoutRealJID(a.XML)
		}
		res := mam.ResultMessage(r.jid, from, queryID, a)
		if err := m.h.Send(ctx, elementReader(res)); err != nil {
			m.log.Debug("muc: send", "err", err)
		}
	}
	return []wire.Node{nodeOf(mam.Fin(msgs, complete))}, nil
}

// archiveMetadata answers a metadata get of r's archive (XEP-0313 §5,
// modules/mam's Metadata).
func (m *Module) archiveMetadata(ctx context.Context, r *room) ([]wire.Node, error) {
	toks, err := mam.Metadata(ctx, func(ctx context.Context, q storage.ArchiveQuery) ([]storage.ArchivedMessage, bool, error) {
		return m.store.QueryRoomArchive(ctx, m.domain.Domainpart(), r.jid.Localpart(), q)
	})
	if err != nil {
		m.log.Warn("muc: the metadata of the archive", "room", r.jid.String(), "err", err)
		return nil, modules.StanzaError(stanza.Wait, stanza.InternalServerError, "")
	}
	return []wire.Node{nodeOf(toks)}, nil
}

// withoutRealJID is an archived message without its muc#user <x/>.
func withoutRealJID(s string) string {
	el, ok := wire.ParseElement(s)
	if !ok {
		return s
	}
	el.Inner = without(el.Inner, isUserX)
	if out := wire.SerializeElement(el, len(s)+64); out != "" {
		return out
	}
	return s
}

// elementReader is el as a token stream, for Host.Send.
func elementReader(el *wire.Element) xml.TokenReader {
	toks := make([]xml.Token, 0, len(el.Inner)+2)
	toks = append(append(append(toks, el.Start), el.Inner...), el.Start.End())
	return &wire.SliceReader{Toks: toks}
}

// nodeOf is the element toks (a start, what it holds, its end) as a node.
func nodeOf(toks []xml.Token) wire.Node {
	st := toks[0].(xml.StartElement)
	return wire.Node{Name: st.Name, Attr: st.Attr, Raw: toks[1 : len(toks)-1]}
}

// loadHistory fills the history of a room loaded from the store, once,
// from its archive: the last messages with a body within the room's
// history length, oldest first.
func (m *Module) loadHistory(ctx context.Context, r *room) {
	if r.historyLoaded {
		return
	}
	r.historyLoaded = true
	n := r.maxHistory(m.opts.HistoryLength)
	if n == 0 || !r.archiving() {
		return
	}
	var got []HistoryEntry
	q := storage.ArchiveQuery{Max: n, Last: true}
	for len(got) < n {
		page, complete, err := m.store.QueryRoomArchive(ctx, m.domain.Domainpart(), r.jid.Localpart(), q)
		if err != nil {
			m.log.Warn("muc: the history from the archive", "room", r.jid.String(), "err", err)
			break
		}
		for i := len(page) - 1; i >= 0 && len(got) < n; i-- {
			if e, ok := historyOf(r, page[i]); ok {
				got = append(got, e)
			}
		}
		if complete || len(page) == 0 {
			break
		}
		q.BeforeID = page[0].ID
	}
	for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
		got[i], got[j] = got[j], got[i]
	}
	r.History = got
}

// historyOf is an archived message as a history entry, if it is one: a
// message with a body from an occupant.
func historyOf(r *room, a storage.ArchivedMessage) (HistoryEntry, bool) {
	el, ok := wire.ParseElement(a.XML)
	if !ok || el.Sub(bodyName) == nil {
		return HistoryEntry{}, false
	}
	from, err := jid.Parse(el.Attr("from"))
	if err != nil || from.Resourcepart() == "" {
		return HistoryEntry{}, false
	}
	payload := append(without(el.Inner, isUserX), stanzaID(r, a.ID).Tokens(nil)...)
	return HistoryEntry{Nick: from.Resourcepart(), Stamp: a.Stamp, ID: el.Attr("id"), StanzaID: a.ID,
		Payload: wire.Serialize(payload, len(a.XML)+1024)}, true
}

// startExpiry runs the removal of archived messages older than
// Options.ArchiveRetention until Stop.
func (m *Module) startExpiry() {
	ret := m.opts.ArchiveRetention
	if !m.archives() || ret <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	every := min(max(ret/10, 50*time.Millisecond), 10*time.Minute)
	m.done.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			total := 0
			for ctx.Err() == nil {
				n, err := m.store.ExpireRoomArchives(ctx, time.Now().Add(-ret), expiryBatch)
				total += n
				if err != nil || n < expiryBatch {
					if err != nil && ctx.Err() == nil {
						m.log.Warn("muc: expire archived messages", "err", err)
					}
					break
				}
			}
			if total > 0 {
				m.log.Info("muc: expired archived messages", "removed", total)
			}
		}
	})
}
