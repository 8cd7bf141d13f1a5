package router

import (
	"context"
	"encoding/xml"
	"errors"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// handlePresence implements RFC 6121 §4 (availability) and §3 (subscriptions)
// for a presence stanza from a bound session.
func (s *Router) handlePresence(ctx context.Context, c *session, el *wire.Element, to jid.JID) error {
	typ := el.Attr("type")
	switch typ {
	case "", "unavailable":
		if to.String() == "" {
			return s.broadcast(ctx, c, el, typ == "unavailable")
		}
		if !s.isLocal(to) && s.service(to) == nil {
			// Federation off: the sender learns that the domain cannot be
			// reached, as Prosody and ejabberd answer a directed presence
			// to a server they cannot connect to.
			return s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
		}
		c.pmu.Lock()
		if c.directed == nil {
			c.directed = make(map[string]struct{})
		}
		if typ == "" {
			c.directed[to.String()] = struct{}{}
		} else {
			delete(c.directed, to.String())
		}
		c.pmu.Unlock()
		s.deliverPresence(ctx, el, to)
		return nil
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		if to.Localpart() == "" {
			return s.bounce(c, el, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed,
				Text: map[string]string{"en": "subscriptions are to a user's bare JID"}})
		}
		return s.outboundSubscription(ctx, c, typ, to.Bare(), el)
	case "probe":
		if h := s.service(to); h != nil {
			// A contact at a service's domain (an external component)
			// answers for itself.
			s.toService(ctx, h, c.addr, el, to)
			return nil
		}
		if to.Localpart() == "" || !s.isLocal(to) {
			return nil
		}
		it, err := s.store.RosterItem(ctx, c.user, to.Bare().String())
		if err == nil && (it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth) {
			s.sendPresenceOf(to.Localpart(), c)
		}
		return nil
	case "error":
		switch {
		case s.remoteDomain(to):
			s.toService(ctx, s.remote, c.addr, el, to)
		case to.Resourcepart() != "" && s.isLocal(to):
			if dst := s.sessions.resource(to.Localpart(), to.Resourcepart()); dst != nil {
				s.deliver(dst, el)
			}
		}
		return nil
	}
	return s.bounce(c, el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
		Text: map[string]string{"en": "unknown presence type"}})
}

// broadcast sends a session's availability to the contacts subscribed to it
// and to the account's own available resources (RFC 6121 §4.2, §4.4, §4.5).
// Initial presence also brings the contacts' presence (the probe of §4.3,
// answered locally) and pending subscription requests.
func (s *Router) broadcast(ctx context.Context, c *session, el *wire.Element, unavailable bool) error {
	c.pmu.Lock()
	initial := !c.available && !unavailable
	wasAvailable := c.available
	wasReachable := c.available && c.priority >= 0
	var directed []string
	if unavailable {
		c.available = false
		c.presence = nil
		for j := range c.directed {
			directed = append(directed, j)
		}
		c.directed = nil
	} else {
		c.available = true
		c.priority = priorityOf(el)
		c.presence = el
	}
	// Offline messages go to the first presence that makes the session a
	// destination of messages to the bare JID (XEP-0160).
	nowReachable := c.available && c.priority >= 0
	c.pmu.Unlock()
	if !unavailable {
		s.publish(c) // with a cluster, its priority and presence to the directory
	}
	if nowReachable && !wasReachable {
		defer s.sessionReachable(ctx, c)
	}
	if len(s.hooks.presence) > 0 && (wasAvailable || !unavailable) {
		defer s.presenceBroadcast(ctx, c, el, initial)
	}
	if unavailable && !wasAvailable && len(directed) == 0 {
		return nil
	}

	roster, _, err := s.store.Roster(ctx, c.user)
	if err != nil {
		return err
	}
	sent := make(map[string]bool)
	for _, it := range roster {
		if it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth {
			j, err := jid.Parse(it.JID)
			if err != nil {
				continue
			}
			sent[j.String()] = true
			s.deliverPresence(ctx, el, j)
		}
	}
	for _, d := range directed {
		if j, err := jid.Parse(d); err == nil && !sent[j.Bare().String()] {
			s.deliverPresence(ctx, el, j)
		}
	}
	for _, own := range s.sessions.of(c.user) {
		if own == c || own.isAvailable() {
			s.deliver(own, withTo(el, own.addr.String()))
		}
	}
	if !initial {
		return nil
	}
	for _, it := range roster {
		j, err := jid.Parse(it.JID)
		if err != nil {
			continue
		}
		// A contact at a service's domain (an external component) is
		// probed (RFC 6121 §4.3.1) and answers with its presence.
		h := s.service(j)
		if h == nil && !s.isLocal(j) {
			continue
		}
		if it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth {
			if h != nil {
				s.toService(ctx, h, c.addr, subscriptionStanza("probe", c.addr.Bare(), j, nil), j)
			} else {
				s.sendPresenceOf(j.Localpart(), c)
			}
		}
		if it.PendingIn {
			s.deliver(c, subscriptionStanza("subscribe", j, c.addr.Bare(), wire.Parse(it.PendingContent)))
		}
	}
	for _, own := range s.sessions.of(c.user) {
		if own != c {
			if p := own.currentPresence(); p != nil {
				s.deliver(c, withTo(p, c.addr.String()))
			}
		}
	}
	s.sessionOnline(ctx, c)
	return nil
}

func (c *session) isAvailable() bool {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	return c.available
}

func (c *session) currentPresence() *wire.Element {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if !c.available {
		return nil
	}
	return c.presence
}

// sendPresenceOf delivers the current presence of every available resource of
// user to dst.
func (s *Router) sendPresenceOf(user string, dst *session) {
	for _, src := range s.sessions.of(user) {
		if p := src.currentPresence(); p != nil {
			s.deliver(dst, withTo(p, dst.addr.String()))
		}
	}
}

// sendUnavailableOf delivers unavailable presence from every available
// resource of user to the local account to (RFC 6121 §3.2.2, §3.3.3).
func (s *Router) sendUnavailableOf(ctx context.Context, user string, to jid.JID) {
	for _, src := range s.sessions.of(user) {
		if src.isAvailable() {
			s.deliverPresence(ctx, unavailableFrom(src.addr), to)
		}
	}
}

// unavailableFrom is the unavailable presence of a session (from its
// full JID, to no one yet).
func unavailableFrom(addr jid.JID) *wire.Element {
	p := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "presence"}}}
	p.SetAttr("type", "unavailable")
	p.SetAttr("from", addr.String())
	return p
}

// deliverPresence delivers availability presence to a JID: one resource for a
// full JID, every available resource for a bare one (RFC 6121 §8.5.2.1.1).
func (s *Router) deliverPresence(ctx context.Context, el *wire.Element, to jid.JID) {
	if h := s.service(to); h != nil {
		// A local session's presence to a service (a room): the service
		// handles it, as it handles the session's unavailable presence
		// when it ends. To a remote JID, a service's presence goes too (a
		// room's to a remote occupant).
		if from, err := jid.Parse(el.Attr("from")); err == nil && (s.isLocal(from) || s.remoteDomain(to) && s.served(from) != nil) {
			s.toService(ctx, h, from, withTo(el, to.String()), to)
		}
		return
	}
	if !s.isLocal(to) || to.Localpart() == "" {
		return
	}
	if res := to.Resourcepart(); res != "" {
		if dst := s.sessions.resource(to.Localpart(), res); dst != nil {
			s.deliver(dst, withTo(el, to.String()))
		}
		return
	}
	for _, dst := range s.sessions.of(to.Localpart()) {
		if dst.isAvailable() {
			s.deliver(dst, withTo(el, dst.addr.String()))
		}
	}
}

// servicePresence handles the presence a module sends (Send) from a JID
// that is not local, a service's (an external component's contacts), when
// it is more than availability: a subscription stanza goes through the
// local contact's roster as RFC 6121 §3 has a contact's server handle
// one, and a probe is answered on the user's behalf (§4.3.2) when the
// prober is subscribed to the user. It reports whether it handled el.
func (s *Router) servicePresence(ctx context.Context, el *wire.Element, to jid.JID) (bool, error) {
	typ := el.Attr("type")
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe":
	default:
		return false, nil
	}
	from, err := jid.Parse(el.Attr("from"))
	if err != nil || s.isLocal(from) {
		return false, nil
	}
	if !s.isLocal(to) || to.Localpart() == "" {
		return true, nil
	}
	if typ != "probe" {
		out := subscriptionStanza(typ, from.Bare(), to.Bare(), el.Inner)
		if id := el.Attr("id"); id != "" {
			out.SetAttr("id", id)
		}
		return true, s.inboundSubscription(ctx, typ, from.Bare(), to.Bare(), out)
	}
	it, err := s.store.RosterItem(ctx, to.Localpart(), from.Bare().String())
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return true, nil
	case err != nil:
		return true, err
	}
	if it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth {
		for _, src := range s.sessions.of(to.Localpart()) {
			if p := src.currentPresence(); p != nil {
				s.deliverPresence(ctx, p, from)
			}
		}
	}
	return true, nil
}

// withTo returns a copy of el addressed to to, sharing its content.
func withTo(el *wire.Element, to string) *wire.Element {
	cp := &wire.Element{Start: el.Start.Copy(), Inner: el.Inner}
	cp.SetAttr("to", to)
	return cp
}

// subscriptionStanza builds a subscription presence between bare JIDs.
func subscriptionStanza(typ string, from, to jid.JID, inner []xml.Token) *wire.Element {
	p := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "presence"}}, Inner: inner}
	p.SetAttr("type", typ)
	p.SetAttr("from", from.String())
	p.SetAttr("to", to.String())
	return p
}

// outboundSubscription applies a subscription stanza the user sent to its own
// roster (RFC 6121 §3.1.2, §3.2.2, §3.3.2, §3.4.2) and passes it on to the
// contact.
func (s *Router) outboundSubscription(ctx context.Context, c *session, typ string, contact jid.JID, el *wire.Element) error {
	user := c.addr.Bare()
	if contact.Equal(user) {
		return s.bounce(c, el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "cannot subscribe to oneself"}})
	}
	var wasFrom, route, existed, askedBefore bool
	_, err := s.updateRoster(ctx, c.user, contact, func(it *storage.RosterItem, exists bool) (bool, error) {
		wasFrom = it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth
		existed, askedBefore = exists, it.AskOut
		route = true
		switch typ {
		case "subscribe":
			if !exists {
				if err := s.checkRosterSize(ctx, c.user); err != nil {
					return false, err
				}
			}
			if it.Subscription == storage.SubNone || it.Subscription == storage.SubFrom {
				it.AskOut = true
			}
			it.Hidden = false
		case "subscribed":
			if !it.PendingIn {
				// No request to approve (adhocd has no pre-approval): nothing
				// changes and nothing is sent (RFC 6121 §3.1.5).
				route = false
				return !exists, nil
			}
			it.PendingIn, it.PendingContent = false, ""
			it.Hidden = false
			it.Subscription = addFrom(it.Subscription)
		case "unsubscribe":
			it.AskOut = false
			it.Subscription = dropTo(it.Subscription)
		case "unsubscribed":
			it.PendingIn, it.PendingContent = false, ""
			it.Subscription = dropFrom(it.Subscription)
		}
		return !exists && typ != "subscribe" || (it.Hidden && !it.PendingIn), nil
	})
	if err != nil {
		var se stanza.Error
		if errors.As(err, &se) {
			return s.bounce(c, el, se)
		}
		return err
	}
	if !route {
		return nil
	}
	out := subscriptionStanza(typ, user, contact, el.Inner)
	if id := el.Attr("id"); id != "" {
		out.SetAttr("id", id)
	}
	if !s.isLocal(contact) && s.service(contact) == nil {
		return s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
	}
	if err := s.inboundSubscription(ctx, typ, user, contact, out); err != nil {
		var se stanza.Error
		if typ != "subscribe" || !errors.As(err, &se) {
			return err
		}
		// The contact's server refused to store the request (its roster is
		// full): the user's roster no longer shows it as asked, and the
		// user's resource gets the error.
		if _, uerr := s.updateRoster(ctx, c.user, contact, func(it *storage.RosterItem, _ bool) (bool, error) {
			it.AskOut = askedBefore
			return !existed, nil
		}); uerr != nil {
			return uerr
		}
		return s.bounce(c, el, se)
	}
	switch {
	case typ == "subscribed":
		for _, src := range s.sessions.of(c.user) {
			if p := src.currentPresence(); p != nil {
				s.deliverPresence(ctx, p, contact)
			}
		}
		if !wasFrom {
			// The contact receives the user's presence from now on: the
			// modules hear of it (XEP-0163 §6.1.1, the last PEP items).
			s.subscriptionApproved(ctx, user, contact)
		}
	case typ == "unsubscribed" && wasFrom:
		s.sendUnavailableOf(ctx, c.user, contact)
	}
	return nil
}

// inboundSubscription applies a subscription stanza from user to the local
// contact's roster and delivers it to the contact (RFC 6121 §3.1.3, §3.2.3,
// §3.3.3, §3.4.3).
func (s *Router) inboundSubscription(ctx context.Context, typ string, from, contact jid.JID, out *wire.Element) error {
	if !s.isLocal(contact) {
		// A contact at a service's domain (an external component) keeps
		// its own roster: the service gets the stanza; a remote contact's
		// server does (federation), when there is one.
		if h := s.service(contact); h != nil {
			s.toService(ctx, h, from, out, contact)
		}
		return nil
	}
	exists, err := s.accountExists(ctx, contact.Localpart())
	if err != nil {
		return err
	}
	if !exists {
		if typ == "subscribe" {
			// The contact does not exist: the user's request is refused.
			return s.inboundSubscription(ctx, "unsubscribed", contact, from, subscriptionStanza("unsubscribed", contact, from, nil))
		}
		return nil
	}
	deliver, autoReply, wasFrom := false, false, false
	_, err = s.updateRoster(ctx, contact.Localpart(), from, func(it *storage.RosterItem, existed bool) (bool, error) {
		wasFrom = it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth
		switch typ {
		case "subscribe":
			if wasFrom {
				autoReply = true
				return !existed, nil
			}
			deliver = !it.PendingIn
			if !existed {
				// A pending request is kept as a hidden item: it counts
				// against the contact's limits.max_roster_items as the
				// items the contact added do.
				if err := s.checkRosterSize(ctx, contact.Localpart()); err != nil {
					var se stanza.Error
					if errors.As(err, &se) {
						return false, errRosterFullForRequest
					}
					return false, err
				}
				it.Hidden = true
			}
			it.PendingIn = true
			it.PendingContent = wire.Serialize(out.Inner, maxPendingContent)
			return false, nil
		case "subscribed":
			if !it.AskOut {
				return !existed, nil
			}
			deliver = true
			it.AskOut = false
			it.Subscription = addTo(it.Subscription)
		case "unsubscribe":
			deliver = wasFrom || it.PendingIn
			it.PendingIn, it.PendingContent = false, ""
			it.Subscription = dropFrom(it.Subscription)
		case "unsubscribed":
			deliver = it.AskOut || it.Subscription == storage.SubTo || it.Subscription == storage.SubBoth
			it.AskOut = false
			it.Subscription = dropTo(it.Subscription)
		}
		return !existed || (it.Hidden && !it.PendingIn), nil
	})
	if err != nil {
		return err
	}
	if autoReply {
		return s.inboundSubscription(ctx, "subscribed", contact, from, subscriptionStanza("subscribed", contact, from, nil))
	}
	if deliver {
		for _, dst := range s.sessions.of(contact.Localpart()) {
			if dst.isAvailable() {
				s.deliver(dst, withTo(out, dst.addr.String()))
			}
		}
	}
	if typ == "unsubscribe" && wasFrom {
		s.sendUnavailableOf(ctx, contact.Localpart(), from)
	}
	return nil
}

func addFrom(s storage.Subscription) storage.Subscription {
	if s == storage.SubTo || s == storage.SubBoth {
		return storage.SubBoth
	}
	return storage.SubFrom
}

func addTo(s storage.Subscription) storage.Subscription {
	if s == storage.SubFrom || s == storage.SubBoth {
		return storage.SubBoth
	}
	return storage.SubTo
}

func dropFrom(s storage.Subscription) storage.Subscription {
	if s == storage.SubBoth || s == storage.SubTo {
		return storage.SubTo
	}
	return storage.SubNone
}

func dropTo(s storage.Subscription) storage.Subscription {
	if s == storage.SubBoth || s == storage.SubFrom {
		return storage.SubFrom
	}
	return storage.SubNone
}

// errRosterFullForRequest answers a subscription request that the contact's
// server cannot store because the contact's roster, pending requests
// included, is at limits.max_roster_items. RFC 6121 §3.1.3 has the
// contact's server keep every request it does not answer at once; one it
// cannot keep is refused rather than silently dropped, and a presence error
// (RFC 6120 §8.3) with resource-constraint tells the requester the refusal
// is the server's, not the contact's (which unsubscribed would claim), and
// may pass once the contact's roster has room.
var errRosterFullForRequest = stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
	Text: map[string]string{"en": "the contact's roster is full: the subscription request cannot be stored"}}

// maxPendingContent bounds what is kept of a pending request's content.
const maxPendingContent = 4096
