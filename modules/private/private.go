// Package private is XEP-0049 Private XML Storage (version 1.2): an account
// keeps XML fragments on the server that only its own sessions can read,
// each under the name and namespace of its root element. Clients keep their
// preferences there, and XEP-0048 bookmarks (<storage
// xmlns='storage:bookmarks'/>), which this module stores like any other
// fragment.
//
// A request is an IQ to the account's own bare JID or to no one carrying
// <query xmlns='jabber:iq:private'/>:
//
//   - a get names the fragments it wants by their empty root elements, all
//     in one namespace (§2.3: "A client MUST NOT query for more than one
//     namespace in a single IQ get request"); the result carries each as
//     stored, or as it was asked for when none is;
//   - a set stores each child element of the query whole, as received,
//     written out again from its parsed tokens, and replaces what was kept
//     under its name; an empty element (no content, no attributes) removes
//     it, since a get of nothing returns it empty anyway;
//   - a query with no child element is refused with bad-request for a get
//     (the XEP's "Bad Format") and not-acceptable for a set (§2.3);
//   - a fragment in a namespace that is not its own is refused with
//     not-acceptable (§2.3's reserved namespaces): jabber:client,
//     jabber:server, jabber:iq:private, or no namespace;
//   - a get or set addressed to another account's bare JID is forbidden
//     (§2.3, which prefers it to service-unavailable).
//
// What an account keeps is bounded: each fragment, as stored, by
// limits.private.max_fragment_bytes, and all of them, keys and XML, by
// limits.private.max_bytes; a set past either is refused whole with
// not-acceptable and a text saying which. Below the store's free-disk floor
// a set that writes gets resource-constraint (wait).
//
// The fragments live in the account's user data (bucket "private", one key
// "{namespace}name" each), so deleting the account deletes them.
package private

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

// NS is the jabber:iq:private namespace, also its disco feature.
const NS = "jabber:iq:private"

// Bucket is where the fragments are kept among the account's user data.
const Bucket = "private"

// Key is the key of the fragment whose root element is named name.
func Key(name xml.Name) string { return "{" + name.Space + "}" + name.Local }

// Module serves jabber:iq:private on the accounts' own bare JIDs.
type Module struct {
	// stored counts the fragments clients stored (removals among them).
	stored metric.Int64Counter
	h      modules.Host
	log    *slog.Logger
	// providers serve fragments kept elsewhere, by root element name; set
	// while the modules start (Provide).
	providers map[xml.Name]Provider
}

// Provider serves one fragment that another module keeps in a form of its
// own: XEP-0402's compatibility (modules/bookmarks) keeps the XEP-0048
// bookmarks, <storage xmlns='storage:bookmarks'/>, as PEP items.
// GetFragment returns the fragment's XML, or ok false to have what is
// stored here served; SetFragment takes what a client stores, its XML, or
// "" for an empty element, instead of this module. Their stanza errors
// reach the client.
type Provider interface {
	GetFragment(ctx context.Context, user string) (x string, ok bool, err error)
	SetFragment(ctx context.Context, user, x string) error
}

// Provide has p serve the fragments whose root element is name. It is
// called while the modules start.
func (m *Module) Provide(name xml.Name, p Provider) {
	if m.providers == nil {
		m.providers = make(map[xml.Name]Provider)
	}
	m.providers[name] = p
}

// New returns the private XML storage module.
func New() modules.Module { return &Module{} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.AccountIQHandler = (*Module)(nil)
	_ modules.BareJIDIQHandler = (*Module)(nil)
	_ modules.Features         = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "private" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.log = h, h.Logger()
	m.stored = modules.Counter(h, "adhocd.private.stored", "Private XML fragments stored by clients (XEP-0049), removals and bookmarks among them.")
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// Features implements modules.Features: jabber:iq:private on the server
// JID, which clients look for before they keep bookmarks there.
func (m *Module) Features() []string { return []string{NS} }

var (
	queryName = xml.Name{Space: NS, Local: "query"}
	routes    = []modules.Route{{Type: stanza.GetIQ, Payload: queryName}, {Type: stanza.SetIQ, Payload: queryName}}
)

// AccountRoutes implements modules.AccountIQHandler: get and set addressed
// to no one or to one's own bare JID.
func (m *Module) AccountRoutes() []modules.Route { return routes }

// BareJIDRoutes implements modules.BareJIDIQHandler: the same addressed to
// another account's bare JID, which is forbidden.
func (m *Module) BareJIDRoutes() []modules.Route { return routes }

// HandleIQ answers a get or set of the requester's private XML.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	if !iq.To.Equal(iq.From.Bare()) {
		return nil, stanza.Error{Type: stanza.Auth, Condition: stanza.Forbidden,
			Text: map[string]string{"en": "private XML storage belongs to its account alone"}}
	}
	frags := children(iq.Inner)
	if len(frags) == 0 {
		if iq.Type == stanza.GetIQ {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: map[string]string{"en": "name the fragment to get by an empty element in its namespace"}}
		}
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: map[string]string{"en": "the query holds no element to store"}}
	}
	for _, f := range frags {
		if reserved(f.start().Name.Space) {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
				Text: map[string]string{"en": fmt.Sprintf("namespace %q is reserved: a fragment is stored in a namespace of its own", f.start().Name.Space)}}
		}
	}
	user := iq.To.Localpart()
	if iq.Type == stanza.SetIQ {
		return nil, m.set(ctx, user, frags)
	}
	return m.get(ctx, user, frags)
}

// fragment is the tokens of one child element of the query, its start and
// end tags included.
type fragment []xml.Token

func (f fragment) start() xml.StartElement { return f[0].(xml.StartElement) }

// children splits the query's content into its child elements.
func children(inner []xml.Token) []fragment {
	var out []fragment
	depth, from := 0, 0
	for i, t := range inner {
		switch t.(type) {
		case xml.StartElement:
			if depth == 0 {
				from = i
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 {
				out = append(out, fragment(inner[from:i+1]))
			}
		}
	}
	return out
}

// reserved reports whether ns may not hold a fragment.
func reserved(ns string) bool {
	switch ns {
	case "", stanza.NSClient, stanza.NSServer, NS:
		return true
	}
	return false
}

// get returns the fragments asked for, each as stored or, when none is, as
// it was asked for.
func (m *Module) get(ctx context.Context, user string, frags []fragment) (xml.TokenReader, error) {
	ns := frags[0].start().Name.Space
	for _, f := range frags[1:] {
		if f.start().Name.Space != ns {
			return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: map[string]string{"en": "a get asks for fragments of one namespace"}}
		}
	}
	// One read for all: the keys of a namespace share a prefix.
	stored, err := m.h.Store().UserData(ctx, user, Bucket, "{"+ns+"}")
	if err != nil {
		m.log.Warn("read private XML", "user", user, "err", err)
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
	}
	byKey := make(map[string][]byte, len(stored))
	for _, d := range stored {
		byKey[d.Key] = d.Value
	}
	query := xml.StartElement{Name: queryName}
	toks := []xml.Token{query}
	for _, f := range frags {
		asked := f.start()
		if p := m.providers[asked.Name]; p != nil {
			x, ok, err := p.GetFragment(ctx, user)
			if err != nil {
				return nil, err
			}
			if kept := wire.Parse(x); ok {
				if st, ok := first(kept); ok && st.Name == asked.Name {
					toks = append(toks, kept...)
					continue
				}
			}
		}
		if raw, ok := byKey[Key(asked.Name)]; ok {
			kept := wire.Parse(string(raw))
			if st, ok := first(kept); ok && st.Name == asked.Name {
				toks = append(toks, kept...)
				continue
			}
			m.log.Warn("stored private XML unreadable", "user", user, "key", Key(asked.Name))
		}
		// Nothing kept: the element as asked for, empty. Its tokens belong
		// to the router, so the start tag is copied.
		st := asked.Copy()
		toks = append(toks, st, st.End())
	}
	return modules.Tokens(append(toks, query.End())), nil
}

// errFull is what set's transaction returns when the account would keep
// more than limits.private.max_bytes.
var errFull = errors.New("private: the account's storage is full")

// set stores the fragments of one request, all or none (those a Provider
// serves first, each on its own).
func (m *Module) set(ctx context.Context, user string, frags []fragment) error {
	lim := m.h.Config().Limits.Private
	changes := make([]storage.Datum, 0, len(frags))
	at := make(map[string]int, len(frags)) // a key sent twice: the last wins
	var rest []fragment
	for _, f := range frags {
		p := m.providers[f.start().Name]
		if p == nil {
			rest = append(rest, f)
			continue
		}
		x := ""
		if len(f.start().Attr) > 0 || !blank(f[1:len(f)-1]) {
			if x = wire.Serialize(f, lim.MaxFragmentBytes); x == "" {
				return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
					Text: map[string]string{"en": fmt.Sprintf("fragment %s is larger than the %d bytes this server keeps, or not XML", Key(f.start().Name), lim.MaxFragmentBytes)}}
			}
		}
		if err := p.SetFragment(ctx, user, x); err != nil {
			return err
		}
		m.stored.Add(ctx, 1)
	}
	if len(rest) == 0 {
		return nil
	}
	for _, f := range rest {
		d := storage.Datum{Key: Key(f.start().Name)}
		// An element with no attributes and nothing but white space inside
		// leaves d.Value nil: it removes the key.
		if len(f.start().Attr) > 0 || !blank(f[1:len(f)-1]) {
			raw := wire.Serialize(f, math.MaxInt)
			if raw == "" {
				return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
					Text: map[string]string{"en": "the fragment cannot be stored as XML"}}
			}
			if len(raw) > lim.MaxFragmentBytes {
				return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
					Text: map[string]string{"en": fmt.Sprintf("fragment %s has %d bytes, more than the %d this server keeps", d.Key, len(raw), lim.MaxFragmentBytes)}}
			}
			d.Value = []byte(raw)
		}
		if i, ok := at[d.Key]; ok {
			changes[i] = d
			continue
		}
		at[d.Key] = len(changes)
		changes = append(changes, d)
	}
	var total, after int64
	err := m.h.Store().UpdateUserData(ctx, user, Bucket, "", func(cur []storage.Datum) ([]storage.Datum, error) {
		total = 0
		sizes := make(map[string]int64, len(cur))
		for _, d := range cur {
			n := int64(len(d.Key) + len(d.Value))
			sizes[d.Key] = n
			total += n
		}
		after = total
		for _, d := range changes {
			after -= sizes[d.Key]
			if d.Value != nil {
				after += int64(len(d.Key) + len(d.Value))
			}
		}
		if after > lim.MaxBytes && after > total {
			return nil, errFull
		}
		return changes, nil
	})
	if errors.Is(err, errFull) {
		return stanza.Error{Type: stanza.Modify, Condition: stanza.NotAcceptable,
			Text: map[string]string{"en": fmt.Sprintf("the account would keep %d bytes of private XML, more than the %d this server keeps", after, lim.MaxBytes)}}
	}
	if err == nil {
		m.stored.Add(ctx, int64(len(changes)))
	}
	return storeError(m.log, user, err)
}

// first returns the start tag tokens begin with.
func first(toks []xml.Token) (xml.StartElement, bool) {
	if len(toks) < 2 {
		return xml.StartElement{}, false
	}
	st, ok := toks[0].(xml.StartElement)
	return st, ok
}

// blank reports whether tokens hold nothing but white space.
func blank(toks []xml.Token) bool {
	for _, t := range toks {
		c, ok := t.(xml.CharData)
		if !ok || strings.TrimSpace(string(c)) != "" {
			return false
		}
	}
	return true
}

// storeError is the stanza error for a failed change of user data: nil for
// none, resource-constraint below the disk floor.
func storeError(log *slog.Logger, user string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNoSpace):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "the server's storage is full"}}
	case errors.Is(err, storage.ErrNotFound):
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	log.Warn("store private XML", "user", user, "err", err)
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}
