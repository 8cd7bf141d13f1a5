package pep

import (
	"context"
	"encoding/xml"
	"errors"
	"sort"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Notifications (XEP-0060 §7.1.2, XEP-0163 §4): a message of type headline
// from the account's bare JID to each available session that may read the
// node and whose caps asked for it: the account's own, and its contacts'
// with a subscription from or both (the presence subscribers of XEP-0163
// §4.1). An open node reaches no more sessions than a presence one: PEP
// offers no explicit subscriptions.

// eventItems is the <items/> of a publish notification.
func eventItems(node string, its []item, payloads bool) []xml.Token {
	return itemsTokens(nsEvent, node, its, payloads)
}

// notify sends <event>inner</event> about owner's node to its subscribers.
func (m *Module) notify(ctx context.Context, owner jid.JID, node string, c nodeConfig, inner []xml.Token) {
	for _, s := range m.subscribers(ctx, owner, c) {
		if sessionCaps(s).wants(node) {
			s.Deliver(eventMessage(owner, s.JID(), inner))
			m.notified.Add(ctx, 1)
		}
	}
}

// subscribers returns the sessions of owner and, unless the node is
// whitelisted, of its local contacts that receive owner's presence.
func (m *Module) subscribers(ctx context.Context, owner jid.JID, c nodeConfig) []modules.Session {
	out := m.h.UserSessions(owner.Localpart())
	if c.Access == accessWhitelist {
		return out
	}
	roster, _, err := m.store.Roster(ctx, owner.Localpart())
	if err != nil {
		m.log.Warn("PEP notification: roster unreadable", "owner", owner, "err", err)
		return out
	}
	for _, it := range roster {
		if it.Subscription != storage.SubFrom && it.Subscription != storage.SubBoth {
			continue
		}
		j, err := jid.Parse(it.JID)
		if err != nil || j.Domainpart() != m.domain.Domainpart() || j.Localpart() == "" {
			continue
		}
		out = append(out, m.h.UserSessions(j.Localpart())...)
	}
	return out
}

// eventMessage wraps a notification for one session.
func eventMessage(owner, to jid.JID, inner []xml.Token) *wire.Element {
	ev := xml.StartElement{Name: xml.Name{Space: nsEvent, Local: "event"}}
	toks := make([]xml.Token, 0, len(inner)+2)
	toks = append(toks, ev)
	toks = append(toks, inner...)
	el := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "message"}}, Inner: append(toks, ev.End())}
	el.SetAttr("from", owner.String())
	el.SetAttr("to", to.String())
	el.SetAttr("type", "headline")
	el.SetAttr("id", newID())
	return el
}

// PresenceBroadcast implements modules.PresenceHook: the caps of the
// session's presence tell which nodes it wants; once they are known, on
// its first available presence or when they change, it gets the last item
// of each node it wants and may read (XEP-0163 §4.3.2). An unavailable
// presence forgets them: notifications go to available sessions only.
func (m *Module) PresenceBroadcast(_ context.Context, s modules.Session, el *wire.Element, initial bool) {
	if el.Attr("type") == "unavailable" {
		s.SetValue(capsKey{}, (*caps)(nil))
		return
	}
	node, ver, hash, ok := capsOf(el)
	cur := sessionCaps(s)
	if !ok {
		if cur == nil || cur.ver != "" {
			s.SetValue(capsKey{}, &caps{})
		}
		return
	}
	if cur != nil && cur.ver == ver && !initial {
		return
	}
	m.resolve(s, node, ver, hash, func(f map[string]bool) {
		if c := sessionCaps(s); c != nil && c.ver == ver && !initial {
			return
		}
		s.SetValue(capsKey{}, &caps{ver: ver, features: f})
		m.sendLast(m.ctx, s, f)
	})
}

// sendLast sends s the last item of every node it wants, of its own account
// and of the accounts whose presence it receives.
func (m *Module) sendLast(ctx context.Context, s modules.Session, f map[string]bool) {
	self := s.JID().Bare()
	owners := []jid.JID{self}
	roster, _, err := m.store.Roster(ctx, self.Localpart())
	if err != nil {
		m.log.Warn("PEP last items: roster unreadable", "user", self, "err", err)
	}
	for _, it := range roster {
		if it.Subscription != storage.SubTo && it.Subscription != storage.SubBoth {
			continue
		}
		if j, err := jid.Parse(it.JID); err == nil && j.Domainpart() == m.domain.Domainpart() && j.Localpart() != "" {
			owners = append(owners, j)
		}
	}
	wanted := wantedNodes(f)
	for _, owner := range owners {
		m.sendLastOf(ctx, s, owner, wanted)
	}
}

// SubscriptionApproved implements modules.SubscriptionHook: a local contact
// that now receives owner's presence is a new subscriber of owner's nodes
// (XEP-0163 §6.1.1, XEP-0060 §6.1.7), and each of its available sessions
// gets the last item of each of owner's nodes it wants by its caps and may
// read, without waiting for its next presence. A session whose caps are not
// known yet gets them once they are, as at its first presence.
func (m *Module) SubscriptionApproved(ctx context.Context, owner, contact jid.JID) {
	if contact.Domainpart() != m.domain.Domainpart() || contact.Localpart() == "" {
		return
	}
	for _, s := range m.h.UserSessions(contact.Localpart()) {
		if c := sessionCaps(s); c != nil {
			m.sendLastOf(ctx, s, owner, wantedNodes(c.features))
		}
	}
}

// wantedNodes lists the nodes caps features ask notifications of
// (node+"+notify", XEP-0163 §4.2), sorted: a client asks for a few
// (avatars, nick, OMEMO devices, bookmarks), and each is one read of each
// owner, however many items the owners keep.
func wantedNodes(f map[string]bool) []string {
	var wanted []string
	for feature, on := range f {
		if node, ok := strings.CutSuffix(feature, "+notify"); ok && on && node != "" {
			wanted = append(wanted, node)
		}
	}
	sort.Strings(wanted)
	return wanted
}

// sendLastOf sends s the last item of each of owner's nodes among wanted
// that notifies, sends its last item (pubsub#send_last_published_item other
// than never) and that s may read, with a <delay/> of when it was
// published (withDelay).
func (m *Module) sendLastOf(ctx context.Context, s modules.Session, owner jid.JID, wanted []string) {
	for _, node := range wanted {
		rec, err := m.record(ctx, owner.Localpart(), node)
		if err != nil || rec.Last == "" || !rec.Config.Notify || rec.Config.SendLast == "never" {
			continue
		}
		if m.mayRead(ctx, owner, s.JID(), rec.Config) != nil {
			continue
		}
		b, err := m.store.UserDatum(ctx, owner.Localpart(), bucket, itemKey(node, rec.Last))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		it, err := decodeItem(b)
		if err != nil {
			continue
		}
		s.Deliver(withDelay(eventMessage(owner, s.JID(), eventItems(node, []item{it}, rec.Config.Payloads)), it.Published))
		m.notified.Add(ctx, 1)
	}
}

// nsDelay is XEP-0203's.
const nsDelay = "urn:xmpp:delay"

// withDelay adds to a notification of a last item, after its <event/>, the
// XEP-0203 <delay/> stamped with the item's publish time (XEP-0060 §6.1.7:
// SHOULD; XEP-0163 §4.3.4's "PEP service sends last published item to
// newly-available resource" has it): the item is not news, and the client
// learns how old it is. An item without a publish time (every publish
// stores one) goes without.
func withDelay(el *wire.Element, published time.Time) *wire.Element {
	if published.IsZero() {
		return el
	}
	d := xml.StartElement{Name: xml.Name{Space: nsDelay, Local: "delay"}, Attr: []xml.Attr{{Name: xml.Name{Local: "stamp"}, Value: modules.Stamp(published)}}}
	el.Inner = append(el.Inner, d, d.End())
	return el
}
