// Package vcard is XEP-0054 vcard-temp (version 1.2): each account keeps
// one vCard on the server. The account sets and reads it with an IQ to its
// own bare JID or to no one; anyone on the server reads it with a get to
// that bare JID, which the server answers on the account's behalf (§3.3),
// since a vCard is world-readable (§5), as Prosody's mod_vcard serves it.
//
// The answers:
//
//   - a get of one's own vCard returns it, or an empty <vCard/> when none is
//     stored (§3.1 allows item-not-found too, but clients that open their
//     profile for editing expect the empty one);
//   - a get of another account's vCard returns it, or item-not-found when
//     none is stored (§3.3: a stanza error, as Prosody answers); the router
//     answers service-unavailable for an account that does not exist;
//   - a set stores the whole <vCard/> as it was received, written out again
//     from its parsed tokens (vCards have no partial updates, §3.2); a set
//     of an empty <vCard/> removes the stored one;
//   - a set addressed to another account's bare JID is forbidden (§3.2);
//   - a vCard larger than limits.vcard.max_bytes once written out is refused
//     with not-acceptable, and below the store's free-disk floor a set gets
//     resource-constraint (wait).
//
// The vCard lives in the account's user data (bucket "vcard", key "vcard"),
// so deleting the account deletes it. vcard-temp is advertised on the
// server JID (§4) and on the accounts' bare JIDs, which answer it.
package vcard

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"

	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// NS is the vcard-temp namespace, also its disco feature.
const NS = "vcard-temp"

// Where the vCard is kept among the account's user data.
const (
	Bucket = "vcard"
	Key    = "vcard"
)

// Module serves vcard-temp on the accounts' bare JIDs.
type Module struct {
	// stored counts the vCards clients stored (removals among them).
	stored metric.Int64Counter
	h      modules.Host
	log    *slog.Logger
	// watchers are told of each vCard a client stores (Watch).
	watchers []Watcher
}

// Watcher is told of the vCard an account's client stored, its XML as
// kept ("" when it removed it), once it is stored; XEP-0398's conversion
// (modules/avatars) publishes its photo to PEP. It runs on the client's
// stream. A vCard a module writes to the store itself is not reported.
type Watcher func(ctx context.Context, user, vcard string)

// Watch has fn told of the vCards clients store. It is called while the
// modules start.
func (m *Module) Watch(fn Watcher) { m.watchers = append(m.watchers, fn) }

// New returns the vcard-temp module.
func New() modules.Module { return &Module{} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.AccountIQHandler = (*Module)(nil)
	_ modules.BareJIDIQHandler = (*Module)(nil)
	_ modules.Features         = (*Module)(nil)
	_ modules.AccountFeatures  = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "vcard" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.log = h, h.Logger()
	m.stored = modules.Counter(h, "adhocd.vcard.stored", "vCards stored by clients (XEP-0054), removals among them.")
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// Features implements modules.Features: vcard-temp on the server JID.
func (m *Module) Features() []string { return []string{NS} }

// AccountFeatures implements modules.AccountFeatures: the bare JIDs answer
// vCard requests.
func (m *Module) AccountFeatures() []string { return []string{NS} }

var (
	vcardName = xml.Name{Space: NS, Local: "vCard"}
	routes    = []modules.Route{{Type: stanza.GetIQ, Payload: vcardName}, {Type: stanza.SetIQ, Payload: vcardName}}
)

// AccountRoutes implements modules.AccountIQHandler: get and set of one's
// own vCard, addressed to no one or to one's bare JID.
func (m *Module) AccountRoutes() []modules.Route { return routes }

// BareJIDRoutes implements modules.BareJIDIQHandler: the same addressed to
// another account's bare JID.
func (m *Module) BareJIDRoutes() []modules.Route { return routes }

// RemoteRoutes implements modules.RemoteIQHandler: anyone may read a
// vCard (XEP-0054 §3.2), remote entities included; only its account
// changes it.
func (m *Module) RemoteRoutes() []modules.Route { return routes[:1] }

// HandleIQ answers a get or set of the vCard of the account iq.To names.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	own := iq.To.Equal(iq.From.Bare())
	if iq.Type == stanza.SetIQ {
		if !own {
			return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden,
				Text: map[string]string{"en": "only the account itself may change its vCard"}}
		}
		return nil, m.set(ctx, iq)
	}
	return m.get(ctx, iq.To.Localpart(), own)
}

// get returns the stored vCard of user; own says the requester is user.
func (m *Module) get(ctx context.Context, user string, own bool) (xml.TokenReader, error) {
	raw, err := m.h.Store().UserDatum(ctx, user, Bucket, Key)
	var toks []xml.Token
	switch {
	case err == nil:
		toks = wire.Parse(string(raw))
		if st, ok := first(toks); !ok || st.Name != vcardName {
			m.log.Warn("stored vCard unreadable", "user", user)
			toks = nil
		}
	case errors.Is(err, storage.ErrNotFound):
	default:
		m.log.Warn("read vCard", "user", user, "err", err)
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	if toks == nil {
		if !own {
			return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound,
				Text: map[string]string{"en": "this account has no vCard"}}
		}
		start := xml.StartElement{Name: vcardName}
		toks = []xml.Token{start, start.End()}
	}
	return modules.Tokens(toks), nil
}

// set stores the vCard of the requester, or removes it when the vCard sent
// is empty.
func (m *Module) set(ctx context.Context, iq modules.IQ) error {
	user := iq.To.Localpart()
	var value []byte
	if !empty(iq.Inner) {
		whole := make([]xml.Token, 0, len(iq.Inner)+2)
		whole = append(append(append(whole, iq.Payload), iq.Inner...), iq.Payload.End())
		raw := wire.Serialize(whole, math.MaxInt)
		if raw == "" {
			return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: map[string]string{"en": "the vCard cannot be stored as XML"}}
		}
		if limit := m.h.Config().Limits.VCard.MaxBytes; len(raw) > limit {
			return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: map[string]string{"en": fmt.Sprintf("the vCard has %d bytes, more than the %d this server keeps", len(raw), limit)}}
		}
		value = []byte(raw)
	}
	err := m.h.Store().UpdateUserData(ctx, user, Bucket, Key, func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: Key, Value: value}}, nil
	})
	if err != nil {
		return storeError(m.log, "store vCard", user, err)
	}
	m.stored.Add(ctx, 1)
	for _, fn := range m.watchers {
		fn(ctx, user, string(value))
	}
	return nil
}

// storeError is the stanza error for a failed change of user data: nil for
// none, resource-constraint below the disk floor.
func storeError(log *slog.Logger, what, user string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNoSpace):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "the server's storage is full"}}
	case errors.Is(err, storage.ErrNotFound):
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	log.Warn(what, "user", user, "err", err)
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}

// empty reports whether an element's content has no child element and no
// text but white space.
func empty(inner []xml.Token) bool {
	for _, t := range inner {
		switch t := t.(type) {
		case xml.StartElement:
			return false
		case xml.CharData:
			if strings.TrimSpace(string(t)) != "" {
				return false
			}
		}
	}
	return true
}

// first returns the start tag tokens begin with.
func first(toks []xml.Token) (xml.StartElement, bool) {
	if len(toks) < 2 {
		return xml.StartElement{}, false
	}
	st, ok := toks[0].(xml.StartElement)
	return st, ok
}
