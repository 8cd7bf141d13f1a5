package blocking

import (
	"context"
	"encoding/xml"
	"strings"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// presenceKey keeps the presence a session last broadcast, nil once it went
// unavailable.
type presenceKey struct{}

// PresenceBroadcast implements modules.PresenceHook: it remembers each
// session's presence, which an unblock sends again.
func (m *Module) PresenceBroadcast(_ context.Context, s modules.Session, el *wire.Element, _ bool) {
	if el.Attr("type") == "unavailable" {
		s.SetValue(presenceKey{}, nil)
		return
	}
	s.SetValue(presenceKey{}, el)
}

// available returns the sessions of user that are available, with the
// presence each broadcast.
func (m *Module) available(user string) []sessionPresence {
	var out []sessionPresence
	for _, s := range m.h.UserSessions(user) {
		if p, _ := s.Value(presenceKey{}).(*wire.Element); p != nil {
			out = append(out, sessionPresence{addr: s.JID().String(), presence: p})
		}
	}
	return out
}

type sessionPresence struct {
	addr     string
	presence *wire.Element
}

// contactChange is what a block or an unblock changes for one local roster
// contact: the addresses of it that became blocked or unblocked (its bare
// JID, or full JIDs of it), and the contact's available sessions whose
// status changed.
type contactChange struct {
	item    storage.RosterItem
	targets []string
	changed []sessionPresence
}

// changes compares the lists before and after a change for each local
// contact of user's roster: less is the list that blocks less (before a
// block, after an unblock), more the one that blocks more.
func (m *Module) changes(ctx context.Context, user string, less, more *list) []contactChange {
	roster, _, err := m.h.Store().Roster(ctx, user)
	if err != nil {
		m.log.Warn("blocklist presence: read roster", "user", user, "err", err)
		return nil
	}
	// The full JID items that differ, by bare JID.
	fulls := make(map[string][]string)
	for _, j := range more.items {
		if i := strings.IndexByte(j, '/'); i >= 0 && !less.has(j) {
			fulls[j[:i]] = append(fulls[j[:i]], j)
		}
	}
	var out []contactChange
	for _, it := range roster {
		c, err := jid.Parse(it.JID)
		if err != nil || c.Domainpart() != m.domain || c.Localpart() == "" || c.Localpart() == user {
			continue
		}
		bare := c.String()
		ch := contactChange{item: it}
		switch {
		case more.blocks(bare) && !less.blocks(bare):
			ch.targets = []string{bare}
		case !more.blocks(bare):
			for _, f := range fulls[bare] {
				if !less.blocks(f) {
					ch.targets = append(ch.targets, f)
				}
			}
		}
		if len(ch.targets) == 0 {
			continue
		}
		for _, sp := range m.available(c.Localpart()) {
			if more.blocks(sp.addr) && !less.blocks(sp.addr) {
				ch.changed = append(ch.changed, sp)
			}
		}
		out = append(out, ch)
	}
	return out
}

func subscribedFrom(it storage.RosterItem) bool {
	return it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth
}

func subscribedTo(it storage.RosterItem) bool {
	return it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth
}

// presenceOnBlock sends, for each newly blocked contact, unavailable
// presence from the user's available resources to the contact when it is
// subscribed to the user (§3.3), and from the contact's available resources
// to the user when the user is subscribed to it. It runs before the cache
// has the new list.
func (m *Module) presenceOnBlock(ctx context.Context, user string, before, after *list) {
	mine := m.available(user)
	self := user + "@" + m.domain
	for _, ch := range m.changes(ctx, user, before, after) {
		if subscribedFrom(ch.item) {
			for _, t := range ch.targets {
				for _, sp := range mine {
					m.send(ctx, unavailable(sp.addr, t))
				}
			}
		}
		if subscribedTo(ch.item) {
			for _, sp := range ch.changed {
				m.send(ctx, unavailable(sp.addr, self))
			}
		}
	}
}

// presenceOnUnblock sends, for each unblocked contact, the user's current
// presence to the contact when it is subscribed to the user (§3.4), and the
// contact's current presence to the user when the user is subscribed to it.
// It runs once the cache has the new list.
func (m *Module) presenceOnUnblock(ctx context.Context, user string, before, after *list) {
	mine := m.available(user)
	self := user + "@" + m.domain
	for _, ch := range m.changes(ctx, user, after, before) {
		if subscribedFrom(ch.item) {
			for _, t := range ch.targets {
				for _, sp := range mine {
					m.send(ctx, addressed(sp.presence, t))
				}
			}
		}
		if subscribedTo(ch.item) {
			for _, sp := range ch.changed {
				m.send(ctx, addressed(sp.presence, self))
			}
		}
	}
}

// unavailable is <presence type='unavailable'/> from from to to.
func unavailable(from, to string) *wire.Element {
	p := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "presence"}}}
	p.SetAttr("type", "unavailable")
	p.SetAttr("from", from)
	p.SetAttr("to", to)
	return p
}

// addressed is a copy of a broadcast presence addressed to to.
func addressed(p *wire.Element, to string) *wire.Element {
	cp := &wire.Element{Start: p.Start.Copy(), Inner: p.Inner}
	cp.SetAttr("to", to)
	return cp
}

// send delivers a presence as the router delivers presence (Host.Send): to
// the available resources of a bare JID, or to one full JID.
func (m *Module) send(ctx context.Context, p *wire.Element) {
	toks := make([]xml.Token, 0, len(p.Inner)+2)
	toks = append(toks, p.Start)
	toks = append(toks, p.Inner...)
	toks = append(toks, p.Start.End())
	if err := m.h.Send(ctx, &reply{toks: toks}); err != nil {
		m.log.Warn("blocklist presence", "to", p.Attr("to"), "err", err)
	}
}
