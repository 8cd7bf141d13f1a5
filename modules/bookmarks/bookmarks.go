// Package bookmarks keeps an account's chat room bookmarks one list
// whichever protocol its clients speak: XEP-0402 PEP Native Bookmarks
// (version 1.1, the node urn:xmpp:bookmarks:1, one item per room) and the
// XEP-0048 Bookmark Storage (version 1.2) that older clients keep either in
// XEP-0049 private XML storage or in the PEP node storage:bookmarks
// (XEP-0223), one <storage xmlns='storage:bookmarks'/> for all rooms.
// Conversations, Dino and Gajim 1.7 use XEP-0402 once the account's
// disco#info says the server does this (XEP-0402 §5.3: the features
// urn:xmpp:bookmarks:1#compat for private XML storage and
// urn:xmpp:bookmarks:1#compat-pep for the PEP node); Converse.js,
// Profanity, poezio and older Gajim keep XEP-0048. Without the conversion a
// user's phone and desktop would each see only its own bookmarks.
//
// The XEP-0402 node is the one list. The module is built on the PEP
// service of modules/pep (found on the Host by name) and on
// modules/private's Provider:
//
//   - a client that publishes to or retracts from urn:xmpp:bookmarks:1:
//     the whole list is published again, as XEP-0048 <storage/>, to the
//     node storage:bookmarks (item "current"), so that XEP-0048 clients
//     that watch it hear of the change;
//   - a client that publishes <storage/> to storage:bookmarks, or stores
//     it in private XML storage: the list is compared with the XEP-0402
//     items, and only the rooms added or changed are published, those
//     gone retracted (XEP-0402 §5.3.2: no notification for a room that did
//     not change); an item's <extensions/>, which XEP-0048 cannot carry, is
//     kept when its room is changed from a XEP-0048 client;
//   - a private XML storage get of storage:bookmarks is answered from the
//     XEP-0402 items once there are any;
//   - bookmarks an account kept in private XML storage before (adhocd
//     kept them as any fragment) move into the XEP-0402 node at its next
//     login, once.
//
// Rooms are converted by their JID, name, autojoin, nick and password;
// XEP-0048 URL bookmarks (<url/>) have no XEP-0402 form and are dropped,
// as XEP-0402 §1 says. The nodes are created as XEP-0402 §3 and XEP-0223
// ask: persistent, whitelist (only the account reads them), as many items
// as the server allows (limits.pep.max_items).
package bookmarks

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/pep"
	"github.com/adhocd/adhocd/modules/private"
	"github.com/adhocd/adhocd/storage"
)

// The nodes and namespaces.
const (
	// NS is XEP-0402's node and payload namespace.
	NS = "urn:xmpp:bookmarks:1"
	// NSLegacy is XEP-0048's, also the name of its PEP node.
	NSLegacy = "storage:bookmarks"
	// legacyItem is the id of the one item of the XEP-0048 node.
	legacyItem = "current"
)

// legacyName is XEP-0048's root element, as private XML storage keys it.
var legacyName = xml.Name{Space: NSLegacy, Local: "storage"}

// nodeOptions are the publish-options the nodes are created with.
var (
	nodeOptions = map[string]string{
		"pubsub#persist_items":            "true",
		"pubsub#max_items":                "max",
		"pubsub#send_last_published_item": "never",
		"pubsub#access_model":             "whitelist",
	}
	legacyOptions = map[string]string{
		"pubsub#persist_items": "true",
		"pubsub#access_model":  "whitelist",
	}
)

// service is what the module uses of modules/pep.
type service interface {
	Watch(node string, fn pep.Watcher)
	NodeItems(ctx context.Context, owner jid.JID, node string) ([]pep.Item, bool, error)
	Publish(ctx context.Context, owner jid.JID, node string, it pep.Item, opts map[string]string) error
	Retract(ctx context.Context, owner jid.JID, node string, ids []string) error
}

// Module converts bookmarks between XEP-0402 and XEP-0048.
type Module struct {
	h      modules.Host
	log    *slog.Logger
	domain jid.JID
	pep    service
	// private is set when modules/private serves storage:bookmarks
	// through this module.
	private bool
	// converted counts the lists converted, by the protocol they came in
	// (xep0402, xep0048).
	converted metric.Int64Counter
}

// New returns the bookmarks conversion module. It builds on the modules
// pep and, for XEP-0048 in private XML storage, private, which must start
// before it.
func New() modules.Module { return &Module{} }

// Interface guards.
var (
	_ modules.AccountFeatures = (*Module)(nil)
	_ modules.OnlineHook      = (*Module)(nil)
	_ private.Provider        = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "bookmarks" }

// Start implements modules.Module: the module watches the two PEP nodes
// and serves storage:bookmarks for private XML storage. Without PEP it does
// nothing, and advertises nothing.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.log, m.domain = h, h.Logger(), h.Domain()
	m.converted = modules.Counter(h, "adhocd.bookmarks.converted", "Bookmark changes converted between XEP-0402 and XEP-0048, by the protocol they came in (xep0402, xep0048).")
	finder, ok := h.(modules.ModuleFinder)
	if !ok {
		return nil
	}
	if p, ok := finder.Module("pep"); ok {
		m.pep, _ = p.(service)
	}
	if m.pep == nil {
		m.log.Warn("no PEP module started before: bookmarks are not converted")
		return nil
	}
	m.pep.Watch(NS, m.nativeChanged)
	m.pep.Watch(NSLegacy, m.legacyChanged)
	if p, ok := finder.Module("private"); ok {
		if pm, ok := p.(*private.Module); ok {
			pm.Provide(legacyName, m)
			m.private = true
		}
	}
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// AccountFeatures implements modules.AccountFeatures (XEP-0402 §5.3).
func (m *Module) AccountFeatures() []string {
	switch {
	case m.pep == nil:
		return nil
	case m.private:
		return []string{NS + "#compat", NS + "#compat-pep"}
	}
	return []string{NS + "#compat-pep"}
}

// room is one bookmark in the fields both protocols carry.
type room struct {
	JID, Name, Nick, Password string
	Autojoin                  bool
	// Extensions is the inner XML of a XEP-0402 item's <extensions/>.
	Extensions string
}

func (r room) same(o room) bool {
	return r.JID == o.JID && r.Name == o.Name && r.Nick == o.Nick && r.Password == o.Password && r.Autojoin == o.Autojoin
}

// conference is the XEP-0402 payload.
type conference struct {
	XMLName    xml.Name    `xml:"urn:xmpp:bookmarks:1 conference"`
	Name       string      `xml:"name,attr,omitempty"`
	Autojoin   string      `xml:"autojoin,attr,omitempty"`
	Nick       string      `xml:"nick,omitempty"`
	Password   string      `xml:"password,omitempty"`
	Extensions *extensions `xml:"extensions"`
}

type extensions struct {
	Inner string `xml:",innerxml"`
}

// legacyStorage is XEP-0048's <storage/>.
type legacyStorage struct {
	XMLName     xml.Name           `xml:"storage:bookmarks storage"`
	Conferences []legacyConference `xml:"conference"`
}

type legacyConference struct {
	JID      string `xml:"jid,attr"`
	Name     string `xml:"name,attr,omitempty"`
	Autojoin string `xml:"autojoin,attr,omitempty"`
	Nick     string `xml:"nick,omitempty"`
	Password string `xml:"password,omitempty"`
}

func isTrue(s string) bool { return s == "true" || s == "1" }

// fromItem reads a XEP-0402 item; ok is false for one that is not a room.
func fromItem(it pep.Item) (room, bool) {
	var c conference
	if it.XML == "" || xml.Unmarshal([]byte(it.XML), &c) != nil {
		return room{}, false
	}
	r := room{JID: it.ID, Name: c.Name, Nick: c.Nick, Password: c.Password, Autojoin: isTrue(c.Autojoin)}
	if c.Extensions != nil {
		r.Extensions = c.Extensions.Inner
	}
	return r, true
}

// toItem writes a room as a XEP-0402 item.
func toItem(r room) (pep.Item, error) {
	c := conference{Name: r.Name, Nick: r.Nick, Password: r.Password}
	if r.Autojoin {
		c.Autojoin = "true"
	}
	if r.Extensions != "" {
		c.Extensions = &extensions{Inner: r.Extensions}
	}
	b, err := xml.Marshal(c)
	if err != nil {
		return pep.Item{}, fmt.Errorf("bookmarks: %s: %w", r.JID, err)
	}
	return pep.Item{ID: r.JID, XML: string(b)}, nil
}

// parseLegacy reads a XEP-0048 <storage/>: its rooms with a valid JID,
// the last of those that name one JID twice.
func parseLegacy(x string) ([]room, error) {
	if strings.TrimSpace(x) == "" {
		return nil, nil
	}
	var s legacyStorage
	if err := xml.Unmarshal([]byte(x), &s); err != nil {
		return nil, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "storage:bookmarks: " + err.Error()}}
	}
	var out []room
	for _, c := range s.Conferences {
		j, err := jid.Parse(c.JID)
		if err != nil || j.Localpart() == "" {
			continue
		}
		r := room{JID: j.Bare().String(), Name: c.Name, Nick: c.Nick, Password: c.Password, Autojoin: isTrue(c.Autojoin)}
		if i := slices.IndexFunc(out, func(o room) bool { return o.JID == r.JID }); i >= 0 {
			out[i] = r
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// legacyXML writes rooms as XEP-0048 <storage/>.
func legacyXML(rooms []room) (string, error) {
	s := legacyStorage{Conferences: make([]legacyConference, 0, len(rooms))}
	for _, r := range rooms {
		c := legacyConference{JID: r.JID, Name: r.Name, Nick: r.Nick, Password: r.Password, Autojoin: "false"}
		if r.Autojoin {
			c.Autojoin = "true"
		}
		s.Conferences = append(s.Conferences, c)
	}
	b, err := xml.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("bookmarks: %w", err)
	}
	return string(b), nil
}

// rooms returns the account's XEP-0402 bookmarks; found is false while
// the node does not exist.
func (m *Module) rooms(ctx context.Context, owner jid.JID) ([]room, bool, error) {
	its, found, err := m.pep.NodeItems(ctx, owner, NS)
	if err != nil {
		return nil, false, fmt.Errorf("bookmarks of %s: %w", owner, err)
	}
	var out []room
	for _, it := range its {
		if r, ok := fromItem(it); ok {
			out = append(out, r)
		}
	}
	return out, found, nil
}

// nativeChanged mirrors a change a client made to the XEP-0402 node into
// the XEP-0048 PEP node.
func (m *Module) nativeChanged(ctx context.Context, c pep.Change) {
	if err := m.mirror(ctx, c.Owner); err != nil {
		m.log.Warn("XEP-0048 bookmarks not updated", "account", c.Owner, "err", err)
		return
	}
	m.converted.Add(ctx, 1, fromNative)
}

// The attributes of the converted counter.
var (
	fromNative = metric.WithAttributes(attribute.String("from", "xep0402"))
	fromLegacy = metric.WithAttributes(attribute.String("from", "xep0048"))
)

// mirror publishes the XEP-0402 list as XEP-0048 <storage/>.
func (m *Module) mirror(ctx context.Context, owner jid.JID) error {
	rooms, _, err := m.rooms(ctx, owner)
	if err != nil {
		return err
	}
	x, err := legacyXML(rooms)
	if err != nil {
		return err
	}
	return m.pep.Publish(ctx, owner, NSLegacy, pep.Item{ID: legacyItem, XML: x}, legacyOptions)
}

// legacyChanged takes the list a XEP-0048 client published to PEP into the
// XEP-0402 node.
func (m *Module) legacyChanged(ctx context.Context, c pep.Change) {
	x := ""
	switch {
	case c.Cleared:
	case len(c.Published) > 0:
		x = c.Published[len(c.Published)-1].XML
	default:
		return // a retraction of the list item: the rooms stay
	}
	rooms, err := parseLegacy(x)
	if err == nil {
		err = m.apply(ctx, c.Owner, rooms, false)
	}
	if err != nil {
		m.log.Warn("XEP-0048 bookmarks not converted", "account", c.Owner, "err", err)
		return
	}
	m.converted.Add(ctx, 1, fromLegacy)
}

// apply makes the XEP-0402 node hold rooms: changed and new rooms are
// published, rooms no longer there retracted, the others left alone; with
// mirror, the XEP-0048 PEP node is published again too.
func (m *Module) apply(ctx context.Context, owner jid.JID, rooms []room, mirror bool) error {
	cur, _, err := m.rooms(ctx, owner)
	if err != nil {
		return err
	}
	var gone []string
	for _, old := range cur {
		if !slices.ContainsFunc(rooms, func(r room) bool { return r.JID == old.JID }) {
			gone = append(gone, old.JID)
		}
	}
	for _, r := range rooms {
		i := slices.IndexFunc(cur, func(o room) bool { return o.JID == r.JID })
		if i >= 0 && cur[i].same(r) {
			continue
		}
		if i >= 0 {
			r.Extensions = cur[i].Extensions
		}
		it, err := toItem(r)
		if err != nil {
			return err
		}
		if err := m.pep.Publish(ctx, owner, NS, it, nodeOptions); err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		if err := m.pep.Retract(ctx, owner, NS, gone); err != nil {
			return err
		}
	}
	if mirror {
		return m.mirror(ctx, owner)
	}
	return nil
}

// account is the bare JID of a local account.
func (m *Module) account(user string) (jid.JID, error) {
	return jid.New(user, m.domain.Domainpart(), "")
}

// GetFragment implements private.Provider: the XEP-0402 list as XEP-0048
// <storage/>, once the node exists; before, what private XML storage holds.
func (m *Module) GetFragment(ctx context.Context, user string) (string, bool, error) {
	owner, err := m.account(user)
	if err != nil {
		return "", false, err
	}
	rooms, found, err := m.rooms(ctx, owner)
	if err != nil || !found {
		return "", false, err
	}
	x, err := legacyXML(rooms)
	return x, err == nil, err
}

// SetFragment implements private.Provider: a XEP-0048 list stored in
// private XML storage becomes the XEP-0402 list (and the XEP-0048 PEP
// node's); what private XML storage kept of it before is removed.
func (m *Module) SetFragment(ctx context.Context, user, x string) error {
	owner, err := m.account(user)
	if err != nil {
		return err
	}
	rooms, err := parseLegacy(x)
	if err != nil {
		return err
	}
	if err := m.apply(ctx, owner, rooms, true); err != nil {
		return err
	}
	m.converted.Add(ctx, 1, fromLegacy)
	return m.dropPrivate(ctx, user)
}

// dropPrivate removes what private XML storage kept of the bookmarks.
func (m *Module) dropPrivate(ctx context.Context, user string) error {
	key := private.Key(legacyName)
	return m.h.Store().UpdateUserData(ctx, user, private.Bucket, key, func(cur []storage.Datum) ([]storage.Datum, error) {
		for _, d := range cur {
			if d.Key == key {
				return []storage.Datum{{Key: key}}, nil
			}
		}
		return nil, nil
	})
}

// SessionOnline implements modules.OnlineHook: bookmarks an account kept
// in private XML storage before there was a XEP-0402 node move into it.
func (m *Module) SessionOnline(ctx context.Context, s modules.Session) {
	user := s.JID().Localpart()
	raw, err := m.h.Store().UserDatum(ctx, user, private.Bucket, private.Key(legacyName))
	if errors.Is(err, storage.ErrNotFound) || err != nil {
		return
	}
	owner := s.JID().Bare()
	if _, found, err := m.pep.NodeItems(ctx, owner, NS); err != nil || found {
		return
	}
	rooms, err := parseLegacy(string(raw))
	if err == nil {
		err = m.apply(ctx, owner, rooms, true)
	}
	if err == nil {
		err = m.dropPrivate(ctx, user)
	}
	if err != nil {
		m.log.Warn("bookmarks in private XML storage not moved to XEP-0402", "account", owner, "err", err)
		return
	}
	m.log.Info("bookmarks moved from private XML storage to XEP-0402", "account", owner, "rooms", len(rooms))
}
