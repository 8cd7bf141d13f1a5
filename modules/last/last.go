// Package last is XEP-0012 Last Activity (version 2.0), answered by the
// server: <query xmlns='jabber:iq:last'/> gets
//
//   - on the server JID, how long the server has been up, in seconds (§5);
//   - on a local account's bare JID (or with no 'to', one's own), 0 seconds
//     while the account has an available resource (§3: "If the user has at
//     least one available resource…"), else the seconds since its last
//     session ended (storage.Account.LastLogout). An account that never
//     logged out has no such time: item-not-found, rather than a time since
//     its creation that would read as "last seen then".
//
// A bare JID's answer is for those allowed to see the account's presence
// (§3, §8): the account itself, and the contacts its roster says are
// subscribed to it (subscription "from" or "both"); anyone else is
// forbidden. The router answers service-unavailable for an account that
// does not exist, and forwards a query to a full JID to that client (§4).
//
// The status text of the last unavailable presence (§3's "Heading Home") is
// not kept: the answer carries seconds only. Nothing is stored; the feature
// jabber:iq:last is advertised on the server JID and on the bare JIDs.
//
// adhocd.last.queries counts the queries the module handles, by target:
// server (its uptime), self (the account's own) or contact (another
// account's, refused or not).
package last

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
)

// NS is the jabber:iq:last namespace, also its disco feature.
const NS = "jabber:iq:last"

// Module answers Last Activity queries on the server JID and the accounts'
// bare JIDs.
type Module struct {
	h       modules.Host
	log     *slog.Logger
	started time.Time
	queries metric.Int64Counter
}

// New returns the Last Activity module.
func New() modules.Module { return &Module{} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.IQHandler        = (*Module)(nil)
	_ modules.AccountIQHandler = (*Module)(nil)
	_ modules.BareJIDIQHandler = (*Module)(nil)
	_ modules.Features         = (*Module)(nil)
	_ modules.AccountFeatures  = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "last" }

// statusHost is what a host that reports its status offers: when the
// server started.
type statusHost interface {
	Status() modules.Status
}

// Start implements modules.Module. The uptime counts from the server's
// start when the host says when that was, else from the module's.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.log, m.started = h, h.Logger(), time.Now()
	m.queries = modules.Counter(h, "adhocd.last.queries", "Last Activity queries handled (XEP-0012), by target: server (its uptime), self (the account's own), contact (another account's, refused or not).")
	if sh, ok := h.(statusHost); ok {
		if t := sh.Status().Started; !t.IsZero() {
			m.started = t
		}
	}
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// Features implements modules.Features.
func (m *Module) Features() []string { return []string{NS} }

// AccountFeatures implements modules.AccountFeatures.
func (m *Module) AccountFeatures() []string { return []string{NS} }

// The target attribute of adhocd.last.queries, built once.
var (
	targetServer  = metric.WithAttributeSet(attribute.NewSet(attribute.String("target", "server")))
	targetSelf    = metric.WithAttributeSet(attribute.NewSet(attribute.String("target", "self")))
	targetContact = metric.WithAttributeSet(attribute.NewSet(attribute.String("target", "contact")))
)

var routes = []modules.Route{{Type: stanza.GetIQ, Payload: xml.Name{Space: NS, Local: "query"}}}

// Routes implements modules.IQHandler: the server's uptime.
func (m *Module) Routes() []modules.Route { return routes }

// AccountRoutes implements modules.AccountIQHandler: one's own last
// activity, asked of no one or of one's bare JID.
func (m *Module) AccountRoutes() []modules.Route { return routes }

// BareJIDRoutes implements modules.BareJIDIQHandler: a contact's.
func (m *Module) BareJIDRoutes() []modules.Route { return routes }

// RemoteRoutes implements modules.RemoteIQHandler: a remote contact asks
// too, answered as a local one is (the server's uptime; an account's last
// activity only to a contact subscribed to its presence, XEP-0012 §4).
func (m *Module) RemoteRoutes() []modules.Route { return routes }

// HandleIQ answers a Last Activity query.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	if iq.To.Localpart() == "" {
		m.queries.Add(ctx, 1, targetServer)
		return answer(time.Since(m.started)), nil
	}
	user := iq.To.Localpart()
	if requester := iq.From.Bare(); requester.Equal(iq.To) {
		m.queries.Add(ctx, 1, targetSelf)
	} else {
		m.queries.Add(ctx, 1, targetContact)
		it, err := m.h.Store().RosterItem(ctx, user, requester.String())
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			m.log.Warn("read roster item", "user", user, "contact", requester.String(), "err", err)
			return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
		}
		if err != nil || (it.Subscription != storage.SubFrom && it.Subscription != storage.SubBoth) {
			return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden,
				Text: map[string]string{"en": "only contacts subscribed to this account's presence may see its last activity"}}
		}
	}
	bound, available := m.presence(user)
	if available {
		return answer(0), nil
	}
	a, err := m.h.Store().Account(ctx, user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	} else if err != nil {
		m.log.Warn("read account", "user", user, "err", err)
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	t := a.LastLogout
	if !bound && a.LastLogin.After(t) {
		// No session is bound, yet the last one's end was never written:
		// the server stopped without it. It was active when it began.
		t = a.LastLogin
	}
	if t.IsZero() {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound,
			Text: map[string]string{"en": "this account has never logged out"}}
	}
	return answer(time.Since(t)), nil
}

// availability is what a session may say of itself: whether it sent
// available presence.
type availability interface {
	Available() bool
}

// presence reports whether user has bound sessions, and whether one of
// them is available.
func (m *Module) presence(user string) (bound, available bool) {
	sessions := m.h.UserSessions(user)
	if len(sessions) == 0 {
		return false, false
	}
	for _, s := range sessions {
		a, ok := s.(availability)
		if !ok {
			return true, m.anyAvailable(user)
		}
		if a.Available() {
			return true, true
		}
	}
	return true, false
}

// anyAvailable looks for an available session of user among all the
// server's sessions, for sessions that do not say it themselves.
func (m *Module) anyAvailable(user string) bool {
	domain := m.h.Domain().Domainpart()
	for _, s := range m.h.Sessions() {
		if s.Available && s.JID.Localpart() == user && s.JID.Domainpart() == domain {
			return true
		}
	}
	return false
}

// answer is <query xmlns='jabber:iq:last' seconds='…'/> for d, in whole
// seconds.
func answer(d time.Duration) xml.TokenReader {
	q := xml.StartElement{Name: xml.Name{Space: NS, Local: "query"},
		Attr: []xml.Attr{{Name: xml.Name{Local: "seconds"}, Value: strconv.FormatInt(max(int64(d/time.Second), 0), 10)}}}
	return &reply{toks: []xml.Token{q, q.End()}}
}

// reply is an IQ result's payload, its tokens made for that answer alone
// (modules.TokenSlice: the router takes them without a copy).
type reply struct {
	toks []xml.Token
	i    int
}

// Token implements xml.TokenReader.
func (r *reply) Token() (xml.Token, error) {
	if r.i >= len(r.toks) {
		return nil, io.EOF
	}
	r.i++
	return r.toks[r.i-1], nil
}

// Tokens implements modules.TokenSlice.
func (r *reply) Tokens() []xml.Token { return r.toks }
