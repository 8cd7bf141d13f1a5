// Package blocking is XEP-0191 Blocking Command (version 1.3): a user keeps
// a list of JIDs they block, and the server stops every stanza between the
// user and those JIDs, in both directions, across sessions and restarts.
//
// The list is asked for with <blocklist xmlns='urn:xmpp:blocking'/> in an IQ
// get, changed with <block/> (one or more <item jid=…/>) and <unblock/>
// (items, or none to unblock everything) in an IQ set, each addressed to no
// one or to the account's own bare JID (§3.2–§3.5). A <block/> without an
// item and a child other than <item/> or an item without a jid get
// bad-request, a jid that is not a JID gets jid-malformed (RFC 6120
// §8.3.3.8), a block that would take the list past limits.max_blocklist_items
// is refused whole with not-acceptable. After a change the server pushes the
// <block/> or <unblock/> as an IQ set to every session of the account that
// has asked for the list (§3.3: "all of the user's resources that have
// requested the blocklist"), the requester's among them; the pushes are
// queued before the result is.
//
// Items match addresses as §6 says: a full JID item that JID only, a bare
// JID item every resource of it, a domain item the domain and every JID at
// it. Nothing is blocked between the resources of one account (§5: "MUST
// NOT block communications from one of a user's resources to another"), nor
// between a user and the server's own JID, which answers the client's own
// requests. Enforcement (§3.3):
//
//   - from a blocked JID to the user: presence of every kind is dropped
//     without an answer, a message of type chat or normal (or none) and an
//     IQ get or set are answered with service-unavailable, and IQ results
//     and errors and other messages are dropped;
//   - from the user to a blocked JID: the stanza is not routed and the user
//     is answered with not-acceptable and the application condition
//     <blocked xmlns='urn:xmpp:blocking:errors'/> (errors and results, which
//     are never answered, are dropped).
//
// Every sender is a local session (adhocd has no server-to-server links), so
// both rules are applied in InterceptIn, on the sender's stream, before the
// router handles the stanza: the errors go back through the router's own
// bounce, as any refused stanza's do, and a dropped subscription request
// never reaches the roster. InterceptOut then stops what the router or a
// module sends on its own between the two, from the cached lists alone:
// presence broadcasts and probe answers, pending subscription requests and
// offline messages delivered at login, PEP notifications. It lets errors
// through, since clients' errors were stopped on their way in and what is
// left are the router's answers to refused stanzas.
//
// On a block the server sends unavailable presence from each of the user's
// available resources to each newly blocked contact subscribed to the user's
// presence, and unavailable presence from each available resource of a
// newly blocked contact the user is subscribed to, to the user's available
// resources. On an unblock it sends the user's current presence to each
// unblocked contact subscribed to it, and the contact's current presence to
// the user when the user is subscribed to the contact (as a probe would
// bring). Both go by the roster: directed presence is not followed, since
// the router does not tell modules where a session sent it. Pending
// subscription requests from a blocked JID stay pending and unseen while
// the block lasts (Prosody cancels them); removing the contact from the
// roster still cancels them.
//
// The list is stored in the account's user data, bucket "blocklist", one
// key per JID, and goes with the account. It is cached in memory (see
// cache), so that the hot path reads no store: a change is stored first,
// then cached.
package blocking

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"sync"

	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Namespaces of XEP-0191.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// Bucket is the user-data bucket of the blocklists: one key per blocked JID,
// in its normal form, with an empty value.
const Bucket = "blocklist"

// Module is XEP-0191 on the module API: IQ routes on the account's own JID,
// a stanza interceptor, a presence hook (to know each session's presence),
// account hooks (to forget a deleted account's list) and the disco feature.
type Module struct {
	// refused counts the stanzas stopped by a blocklist, by direction:
	// to (the sender blocked the recipient), from (the recipient blocked
	// the sender), out (dropped on the way to a session).
	refused metric.Int64Counter
	h       modules.Host
	log     *slog.Logger
	domain  string
	cache   *cache

	// writing serialises changes, so that each is cached in the order it
	// was stored.
	writing chan struct{}

	// Background loads of lists InterceptOut found missing.
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	warmMu  sync.Mutex
	warming map[string]bool
}

// New returns the Blocking Command module.
func New() modules.Module { return &Module{} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.AccountIQHandler  = (*Module)(nil)
	_ modules.StanzaInterceptor = (*Module)(nil)
	_ modules.PresenceHook      = (*Module)(nil)
	_ modules.AccountHook       = (*Module)(nil)
	_ modules.Features          = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "blocking" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.log, m.domain = h, h.Logger(), h.Domain().String()
	m.cache = newCache(func(user string) bool { return len(h.UserSessions(user)) > 0 })
	m.writing = make(chan struct{}, 1)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.warming = make(map[string]bool)
	m.refused = modules.Counter(h, "adhocd.blocking.refused", "Stanzas stopped by a XEP-0191 blocklist, by direction: to (the sender blocks the recipient), from (the recipient blocks the sender), out (dropped on the way to a session).")
	return nil
}

// Stop implements modules.Module: it waits for the background loads.
func (m *Module) Stop(context.Context) error {
	m.cancel()
	m.wg.Wait()
	return nil
}

// Features implements modules.Features: urn:xmpp:blocking on the server JID
// (§3.1).
func (m *Module) Features() []string { return []string{NS} }

var routes = []modules.Route{
	{Type: stanza.GetIQ, Payload: xml.Name{Space: NS, Local: "blocklist"}},
	{Type: stanza.SetIQ, Payload: xml.Name{Space: NS, Local: "block"}},
	{Type: stanza.SetIQ, Payload: xml.Name{Space: NS, Local: "unblock"}},
}

// AccountRoutes implements modules.AccountIQHandler: the requests go to no
// one or to the account's bare JID, "thus handled by the user's server".
func (m *Module) AccountRoutes() []modules.Route { return routes }

// AccountCreated implements modules.AccountHook: a new account of a name
// used before starts with no list.
func (m *Module) AccountCreated(_ context.Context, account jid.JID) {
	m.cache.drop(account.Localpart())
}

// AccountDeleted implements modules.AccountHook: the store removed the list
// with the account, and the cache forgets it.
func (m *Module) AccountDeleted(_ context.Context, account jid.JID) {
	m.cache.drop(account.Localpart())
}

// interestedKey marks a session that asked for the blocklist and gets the
// pushes.
type interestedKey struct{}

// HandleIQ answers a blocklist request, a block or an unblock.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	if iq.Session == nil {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.NotAllowed}
	}
	user := iq.From.Localpart()
	switch iq.Payload.Name.Local {
	case "blocklist":
		l, err := m.list(ctx, user)
		if err != nil {
			return nil, err
		}
		iq.Session.SetValue(interestedKey{}, true)
		return &reply{toks: itemsElement("blocklist", l.items)}, nil
	case "block", "unblock":
		block := iq.Payload.Name.Local == "block"
		items, err := parseItems(iq.Inner)
		if err != nil {
			return nil, err
		}
		if block && len(items) == 0 {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: map[string]string{"en": "a <block/> needs at least one <item/>"}}
		}
		if err := m.change(ctx, user, block, items); err != nil {
			return nil, err
		}
		m.push(user, itemsElement(iq.Payload.Name.Local, items))
		return nil, nil
	}
	return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented}
}

// list returns user's list, from the cache or the store.
func (m *Module) list(ctx context.Context, user string) (*list, error) {
	return m.cache.load(ctx, user, m.read)
}

// read reads user's list from the store.
func (m *Module) read(ctx context.Context, user string) (*list, error) {
	data, err := m.h.Store().UserData(ctx, user, Bucket, "")
	if err != nil {
		return nil, err
	}
	set := make(map[string]struct{}, len(data))
	for _, d := range data {
		set[d.Key] = struct{}{}
	}
	return newList(set), nil
}

// parseItems reads the <item jid=…/> children of a <block/> or <unblock/>:
// the JIDs in their normal form, each once, in the order given.
func parseItems(inner []xml.Token) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	depth := 0
	for _, t := range inner {
		switch t := t.(type) {
		case xml.StartElement:
			depth++
			if depth != 1 {
				continue
			}
			if t.Name != (xml.Name{Space: NS, Local: "item"}) {
				return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
					Text: map[string]string{"en": "only <item/> elements may be in a <block/> or <unblock/>"}}
			}
			raw, ok := jidAttr(t)
			if !ok {
				return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
					Text: map[string]string{"en": "an <item/> needs a jid"}}
			}
			j, err := jid.Parse(raw)
			if err != nil {
				return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed,
					Text: map[string]string{"en": fmt.Sprintf("%q is not a JID", raw)}}
			}
			if s := j.String(); !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		case xml.EndElement:
			depth--
		}
	}
	return out, nil
}

func jidAttr(t xml.StartElement) (string, bool) {
	for _, a := range t.Attr {
		if a.Name.Local == "jid" && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

// itemsElement is <name xmlns='urn:xmpp:blocking'> with one <item/> per JID.
func itemsElement(name string, jids []string) []xml.Token {
	start := xml.StartElement{Name: xml.Name{Space: NS, Local: name}}
	toks := make([]xml.Token, 0, 2+2*len(jids))
	toks = append(toks, start)
	for _, j := range jids {
		it := xml.StartElement{Name: xml.Name{Space: NS, Local: "item"}, Attr: []xml.Attr{{Name: xml.Name{Local: "jid"}, Value: j}}}
		toks = append(toks, it, it.End())
	}
	return append(toks, start.End())
}

// change stores a block or an unblock of items (none: everything) for user,
// sends the presence that follows from it, and caches the new list.
func (m *Module) change(ctx context.Context, user string, block bool, items []string) error {
	select {
	case m.writing <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("blocking: change the blocklist of %q: %w", user, ctx.Err())
	}
	defer func() { <-m.writing }()
	limit := m.h.Config().Limits.MaxBlocklistItems
	var before, after *list
	err := m.h.Store().UpdateUserData(ctx, user, Bucket, "", func(cur []storage.Datum) ([]storage.Datum, error) {
		old := make(map[string]struct{}, len(cur))
		for _, d := range cur {
			old[d.Key] = struct{}{}
		}
		next := maps.Clone(old)
		var changes []storage.Datum
		switch {
		case block:
			for _, j := range items {
				if _, ok := next[j]; !ok {
					next[j] = struct{}{}
					changes = append(changes, storage.Datum{Key: j, Value: []byte{}})
				}
			}
			if len(next) > limit {
				return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
					Text: map[string]string{"en": fmt.Sprintf("the blocklist would hold %d JIDs, more than the %d this server keeps", len(next), limit)}}
			}
		case len(items) == 0:
			for j := range old {
				changes = append(changes, storage.Datum{Key: j})
			}
			clear(next)
		default:
			for _, j := range items {
				if _, ok := next[j]; ok {
					delete(next, j)
					changes = append(changes, storage.Datum{Key: j})
				}
			}
		}
		before, after = newList(old), newList(next)
		return changes, nil
	})
	if err != nil {
		return storeError(m.log, user, err)
	}
	if block {
		// Before the cache has the new items, which would stop these.
		m.presenceOnBlock(ctx, user, before, after)
		m.cache.set(user, after)
	} else {
		m.cache.set(user, after)
		m.presenceOnUnblock(ctx, user, before, after)
	}
	return nil
}

// storeError is the stanza error for a failed change: the limit's own,
// resource-constraint below the disk floor, internal-server-error (logged)
// for the rest.
func storeError(log *slog.Logger, user string, err error) error {
	var se stanza.Error
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, storage.ErrNoSpace):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "the server's storage is full"}}
	case errors.Is(err, storage.ErrNotFound):
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	log.Warn("store blocklist", "user", user, "err", err)
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}

// push sends payload (a <block/> or <unblock/>) in an IQ set to every session
// of user that asked for the list (§3.3, §3.4, §3.5). The sessions answer
// with a result addressed to no one, which the router drops.
func (m *Module) push(user string, payload []xml.Token) {
	for _, s := range m.h.UserSessions(user) {
		if on, _ := s.Value(interestedKey{}).(bool); !on {
			continue
		}
		el := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "iq"}}, Inner: payload}
		el.SetAttr("type", string(stanza.SetIQ))
		el.SetAttr("id", pushID())
		el.SetAttr("to", s.JID().String())
		s.Deliver(el)
	}
}

func pushID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "blocklist-push-" + hex.EncodeToString(b[:])
}

// reply is an IQ result's payload, built for that answer alone
// (modules.TokenSlice).
type reply struct {
	toks []xml.Token
	i    int
}

func (r *reply) Tokens() []xml.Token { return r.toks }

func (r *reply) Token() (xml.Token, error) {
	if r.i >= len(r.toks) {
		return nil, io.EOF
	}
	r.i++
	return r.toks[r.i-1], nil
}
