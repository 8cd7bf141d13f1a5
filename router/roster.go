package router

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/roster"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/c2s"
	"github.com/adhocd/adhocd/rosterxml"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// maxRosterText bounds item names and group names (RFC 6121 §2.3.3 lets the
// server refuse long ones with not-acceptable).
const maxRosterText = 1023

var rosterQuery = xml.Name{Space: roster.NS, Local: "query"}

// accountIQ serves IQs addressed to the user's own account: the roster
// (RFC 6121 §2), the legacy session IQ and a second bind. It reports whether
// it handled the IQ. disco#info on the account's bare JID is modules/disco's.
func (s *Router) accountIQ(ctx context.Context, c *session, el *wire.Element) (bool, error) {
	payload, _ := el.Payload()
	typ := stanza.IQType(el.Attr("type"))
	if typ != stanza.GetIQ && typ != stanza.SetIQ {
		return false, nil
	}
	switch payload {
	case rosterQuery:
		return true, s.rosterIQ(ctx, c, el)
	case xml.Name{Space: c2s.NSSession, Local: "session"}:
		return true, s.reply(c, el, nil)
	case xml.Name{Space: c2s.NSBind, Local: "bind"}:
		return true, s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed,
			Text: map[string]string{"en": "a resource is already bound on this stream"}})
	}
	return false, nil
}

// reply answers an IQ request with a result carrying payload tokens.
func (s *Router) reply(c *session, el *wire.Element, payload []xml.Token) error {
	r := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "iq"}}, Inner: payload}
	r.SetAttr("id", el.Attr("id"))
	r.SetAttr("type", "result")
	r.SetAttr("to", c.addr.String())
	if to := el.Attr("to"); to != "" {
		r.SetAttr("from", to)
	}
	s.deliver(c, r)
	return nil
}

func (s *Router) rosterIQ(ctx context.Context, c *session, el *wire.Element) error {
	query := el.Child(rosterQuery)
	qstart := query[0].(xml.StartElement)
	if el.Attr("type") == string(stanza.GetIQ) {
		c.pmu.Lock()
		c.interested = true
		c.pmu.Unlock()
		items, ver, err := s.store.Roster(ctx, c.user)
		if err != nil {
			return err
		}
		verStr := strconv.FormatUint(ver, 10)
		if wire.AttrOf(qstart, "ver") == verStr {
			// RFC 6121 §2.6.3: the client's cached roster is current.
			return s.reply(c, el, nil)
		}
		return s.reply(c, el, rosterxml.Query(verStr, items))
	}
	return s.rosterSet(ctx, c, el, query)
}

// rosterSet applies a roster set (RFC 6121 §2.3, §2.5).
func (s *Router) rosterSet(ctx context.Context, c *session, el *wire.Element, query []xml.Token) error {
	bad := func(cond stanza.Condition, text string) error {
		typ := stanza.Modify
		if cond == stanza.NotAllowed {
			typ = stanza.Cancel
		}
		return s.bounce(c, el, stanza.Error{Type: typ, Condition: cond, Text: map[string]string{"en": text}})
	}
	sub := &wire.Element{Start: query[0].(xml.StartElement), Inner: query[1 : len(query)-1]}
	itemName := xml.Name{Space: roster.NS, Local: "item"}
	if _, n := sub.Payload(); n != 1 {
		return bad(stanza.BadRequest, "a roster set carries exactly one item")
	}
	itemToks := sub.Child(itemName)
	if itemToks == nil {
		return bad(stanza.BadRequest, "a roster set carries exactly one item")
	}
	item := &wire.Element{Start: itemToks[0].(xml.StartElement), Inner: itemToks[1 : len(itemToks)-1]}
	contact, err := jid.Parse(item.Attr("jid"))
	if err != nil || item.Attr("jid") == "" {
		return bad(stanza.BadRequest, "the item needs a valid jid")
	}
	contact = contact.Bare()
	if contact.Equal(c.addr.Bare()) {
		return bad(stanza.NotAllowed, "the roster cannot hold the user's own JID")
	}
	if item.Attr("subscription") == "remove" {
		return s.rosterRemove(ctx, c, el, contact)
	}
	name := item.Attr("name")
	var groups []string
	groupName := xml.Name{Space: roster.NS, Local: "group"}
	for i, t := range item.Inner {
		st, ok := t.(xml.StartElement)
		if !ok || st.Name != groupName {
			continue
		}
		g := wire.TextOf(item.Inner[i:])
		switch {
		case g == "":
			return bad(stanza.NotAcceptable, "empty group name")
		case len(g) > maxRosterText:
			return bad(stanza.NotAcceptable, "group name too long")
		case slices.Contains(groups, g):
			return bad(stanza.BadRequest, "duplicate group")
		}
		groups = append(groups, g)
	}
	if len(name) > maxRosterText {
		return bad(stanza.NotAcceptable, "name too long")
	}
	_, err = s.updateRoster(ctx, c.user, contact, func(it *storage.RosterItem, exists bool) (bool, error) {
		if !exists || it.Hidden {
			if err := s.checkRosterSize(ctx, c.user); err != nil {
				return false, err
			}
		}
		it.Name, it.Groups, it.Hidden = name, groups, false
		return false, nil
	})
	if err != nil {
		var se stanza.Error
		if errors.As(err, &se) {
			return s.bounce(c, el, se)
		}
		return err
	}
	return s.reply(c, el, nil)
}

// rosterRemove deletes an item and cancels the subscriptions both ways
// (RFC 6121 §2.5.2).
func (s *Router) rosterRemove(ctx context.Context, c *session, el *wire.Element, contact jid.JID) error {
	var old storage.RosterItem
	found := false
	_, err := s.updateRoster(ctx, c.user, contact, func(it *storage.RosterItem, exists bool) (bool, error) {
		old, found = *it, exists && !it.Hidden
		return true, nil
	})
	if err != nil {
		return err
	}
	if !found {
		return s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound})
	}
	if err := s.reply(c, el, nil); err != nil {
		return err
	}
	user := c.addr.Bare()
	if !s.isLocal(contact) && s.service(contact) == nil {
		return nil
	}
	if old.Subscription == storage.SubTo || old.Subscription == storage.SubBoth || old.AskOut {
		if err := s.inboundSubscription(ctx, "unsubscribe", user, contact, subscriptionStanza("unsubscribe", user, contact, nil)); err != nil {
			return err
		}
	}
	if old.Subscription == storage.SubFrom || old.Subscription == storage.SubBoth || old.PendingIn {
		if err := s.inboundSubscription(ctx, "unsubscribed", user, contact, subscriptionStanza("unsubscribed", user, contact, nil)); err != nil {
			return err
		}
		s.sendUnavailableOf(ctx, c.user, contact)
	}
	return nil
}

// ContactRemoved tells r.Owner's available resources that deleted, an
// account being deleted, left their roster (account.Service.Delete has
// removed the item and ended the account's sessions, whose unavailable
// presence went out then). The subscription stanzas are those a contact
// gets when a user removes it from the roster (RFC 6121 §2.5.2): unsubscribe
// where deleted had a subscription to the owner's presence or asked for one
// (§3.3.3), unsubscribed where the owner had one to deleted's or asked for one
// (§3.2.3); then a roster push of the removal to the interested resources
// (§2.1.6), unless the item was hidden (a pending request only).
func (s *Router) ContactRemoved(ctx context.Context, deleted jid.JID, r storage.RemovedItem) {
	it := r.Item
	owner, err := s.bareOf(r.Owner)
	if err != nil {
		s.log.Warn("tell a contact of a deleted account", "owner", r.Owner, "err", err)
		return
	}
	if it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth || it.PendingIn {
		s.deliverPresence(ctx, subscriptionStanza("unsubscribe", deleted, owner, nil), owner)
	}
	if it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth || it.AskOut {
		s.deliverPresence(ctx, subscriptionStanza("unsubscribed", deleted, owner, nil), owner)
	}
	if !it.Hidden {
		s.pushRoster(r.Owner, strconv.FormatUint(r.Version, 10), storage.RosterItem{JID: deleted.String(), Subscription: "remove"})
	}
}

// bareOf returns a local account's bare JID.
func (s *Router) bareOf(user string) (jid.JID, error) {
	return jid.New(user, s.domain.Domainpart(), "")
}

// checkRosterSize refuses a new item beyond limits.max_roster_items.
func (s *Router) checkRosterSize(ctx context.Context, user string) error {
	items, _, err := s.store.Roster(ctx, user)
	if err != nil {
		return err
	}
	if len(items) >= s.limits().MaxRosterItems {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed,
			Text: map[string]string{"en": "the roster is full"}}
	}
	return nil
}

// updateRoster changes one item and pushes the result to the account's
// interested resources (RFC 6121 §2.1.6) when the visible roster changed.
func (s *Router) updateRoster(ctx context.Context, user string, contact jid.JID, fn func(*storage.RosterItem, bool) (bool, error)) (storage.RosterItem, error) {
	var before, after storage.RosterItem
	var existed, removed bool
	ver, err := s.store.UpdateRosterItem(ctx, user, contact.String(), func(it *storage.RosterItem, exists bool) (bool, error) {
		before, existed = *it, exists
		remove, err := fn(it, exists)
		after, removed = *it, remove
		return remove, err
	})
	if err != nil {
		return after, err
	}
	visibleBefore := existed && !before.Hidden
	visibleAfter := !removed && !after.Hidden
	changed := visibleBefore != visibleAfter || (visibleAfter && !sameItem(before, after))
	if changed {
		push := after
		if !visibleAfter {
			push = storage.RosterItem{JID: contact.String(), Subscription: "remove"}
		}
		s.pushRoster(user, strconv.FormatUint(ver, 10), push)
	}
	return after, nil
}

func sameItem(a, b storage.RosterItem) bool {
	return a.Name == b.Name && a.Subscription == b.Subscription && a.AskOut == b.AskOut && slices.Equal(a.Groups, b.Groups)
}

// pushRoster sends a roster push to every resource of user that requested
// the roster.
func (s *Router) pushRoster(user, ver string, it storage.RosterItem) {
	for _, dst := range s.sessions.of(user) {
		dst.pmu.Lock()
		interested := dst.interested
		dst.pmu.Unlock()
		if !interested {
			continue
		}
		push := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "iq"}},
			Inner: rosterxml.Query(ver, []storage.RosterItem{it})}
		push.SetAttr("type", "set")
		push.SetAttr("id", "push-"+c2s.NewID()[:16])
		push.SetAttr("to", dst.addr.String())
		s.deliver(dst, push)
	}
}

// onBound runs when a session has bound its resource.
func (s *Router) onBound(ctx context.Context, c *session) {
	if err := s.store.RecordLogin(c.user, time.Now().UTC()); err != nil {
		s.log.Warn("record login", "user", c.user, "err", err)
	}
	s.countLogin(c.user)
	s.metrics.SessionBound(1)
	c.log.Info("session bound")
}

// onUnbound runs when a bound session ends: its presence becomes unavailable
// to everyone who had it, and it leaves the registry.
func (s *Router) onUnbound(c *session) {
	ctx := context.Background()
	if err := s.broadcast(ctx, c, unavailableFrom(c.addr), true); err != nil {
		s.log.Warn("broadcast unavailable", "jid", c.addr.String(), "err", err)
	}
	s.sessions.unbind(c)
	if s.cluster != nil {
		s.clusterUnbind(c)
	}
	if err := s.store.RecordLogout(c.user, time.Now().UTC()); err != nil {
		s.log.Warn("record logout", "user", c.user, "err", err)
	}
	s.metrics.SessionBound(-1)
	c.log.Info("session ended")
}

// nsRosterVer is the stream feature of roster versioning (RFC 6121 §2.6).
const nsRosterVer = "urn:xmpp:features:rosterver"

// StreamFeatures lists what the router offers authenticated streams: roster
// versioning (RFC 6121 §2.6.1).
func (s *Router) StreamFeatures() []xml.Name {
	return []xml.Name{{Space: nsRosterVer, Local: "ver"}}
}
