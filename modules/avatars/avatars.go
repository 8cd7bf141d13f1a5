// Package avatars is XEP-0398 User Avatar to vCard-Based Avatars
// Conversion (version 0.2.1): an account has one avatar whichever way its
// clients set it, XEP-0084 in PEP (Conversations, Dino, Gajim, Converse.js)
// or the PHOTO of its XEP-0054 vCard (XEP-0153: Profanity, Psi, older
// clients, and every client reading the avatars of group chat occupants),
// and its presence says which (XEP-0153's hash), so that contacts fetch it
// only when it changes. The account's disco#info carries
// urn:xmpp:pep-vcard-conversion:0 (§2).
//
//   - From PEP to vCard (§3.1): when a client publishes to
//     urn:xmpp:avatar:metadata, the info without a url names the image; its
//     item in urn:xmpp:avatar:data, whose SHA-1 must be the id, becomes the
//     vCard's PHOTO (TYPE and BINVAL), the rest of the vCard kept. Empty
//     metadata (XEP-0084 §4.2, the avatar turned off) removes the PHOTO.
//   - From vCard to PEP (§3.2): a vCard a client stores with a PHOTO is
//     published as the data item (id: the image's SHA-1), then as metadata
//     with one info (id, bytes, type), and the metadata's subscribers are
//     notified; a vCard without a PHOTO, for an account that had an avatar,
//     publishes empty metadata. Nodes created so have XEP-0084's default
//     access model, presence.
//   - Presence (§4): an available presence the account sends, broadcast or
//     directed (a group chat join), gets <x xmlns='vcard-temp:x:update'>
//     with the avatar's hash when it has no such element or one without a
//     <photo/>; a photo the client put there, empty or not, is left alone.
//     An account without an avatar gets nothing added.
//
// A conversion that does not fit (an image over limits.vcard.max_bytes as
// a vCard, or over limits.pep.max_item_bytes as an item) is skipped and
// logged; the client's own request succeeded and stays. Each account's
// hash is kept in memory (at most cacheSize accounts, the others read
// again from PEP or the vCard when they next send presence); a change on
// this server updates it at once.
package avatars

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/pep"
	"github.com/adhocd/adhocd/modules/vcard"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Namespaces and nodes.
const (
	// NS is the account feature of §2.
	NS         = "urn:xmpp:pep-vcard-conversion:0"
	nodeData   = "urn:xmpp:avatar:data"
	nodeMeta   = "urn:xmpp:avatar:metadata"
	nsUpdate   = "vcard-temp:x:update"
	cacheSize  = 100000
	noAvatar   = "" // the cached hash of an account without one
	presenceEl = "presence"
)

// service is what the module uses of modules/pep.
type service interface {
	Watch(node string, fn pep.Watcher)
	NodeItems(ctx context.Context, owner jid.JID, node string) ([]pep.Item, bool, error)
	Publish(ctx context.Context, owner jid.JID, node string, it pep.Item, opts map[string]string) error
}

// Module converts avatars between XEP-0084 and vCards.
type Module struct {
	h      modules.Host
	log    *slog.Logger
	domain jid.JID
	pep    service
	hashes *lru.Cache[string, string] // username → hash, noAvatar for none
	// converted counts the avatars converted, by where they were set
	// (pep, vcard); hashed the presences given the avatar's hash.
	converted, hashed metric.Int64Counter
}

// New returns the avatar conversion module; it builds on the modules pep
// and vcard, which must start before it.
func New() modules.Module { return &Module{} }

// Interface guards.
var (
	_ modules.AccountFeatures  = (*Module)(nil)
	_ modules.PresenceRewriter = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "avatars" }

// Start implements modules.Module. Without both PEP and vCards it does
// nothing and advertises nothing.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.log, m.domain = h, h.Logger(), h.Domain()
	m.converted = modules.Counter(h, "adhocd.avatars.converted", "Avatars converted between XEP-0084 and vCards (XEP-0398), by where they were set (pep, vcard).")
	m.hashed = modules.Counter(h, "adhocd.avatars.presence_hashes", "Available presences the server gave the account's avatar hash (XEP-0153).")
	finder, ok := h.(modules.ModuleFinder)
	if !ok {
		return nil
	}
	p, okP := finder.Module("pep")
	v, okV := finder.Module("vcard")
	vm, isV := v.(*vcard.Module)
	svc, isP := p.(service)
	if !okP || !okV || !isV || !isP {
		m.log.Warn("PEP or vCards not started before: avatars are not converted")
		return nil
	}
	cache, err := lru.New[string, string](cacheSize)
	if err != nil {
		return fmt.Errorf("avatars: %w", err)
	}
	m.pep, m.hashes = svc, cache
	svc.Watch(nodeMeta, m.metadataChanged)
	vm.Watch(m.vcardStored)
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// AccountFeatures implements modules.AccountFeatures.
func (m *Module) AccountFeatures() []string {
	if m.pep == nil {
		return nil
	}
	return []string{NS}
}

// element makes an element of a serialised one; nil for none.
func element(x string) *wire.Element {
	toks := wire.Parse(x)
	if len(toks) < 2 {
		return nil
	}
	st, ok := toks[0].(xml.StartElement)
	if !ok {
		return nil
	}
	return &wire.Element{Start: st, Inner: toks[1 : len(toks)-1]}
}

// info is the avatar a metadata item names: the info without a url.
type info struct {
	id, typ string
	bytes   int
}

// pickInfo reads a metadata payload; ok is false for empty metadata.
func pickInfo(x string) (info, bool) {
	el := element(x)
	if el == nil {
		return info{}, false
	}
	for _, in := range el.Children(xml.Name{Space: nodeMeta, Local: "info"}) {
		if in.Attr("url") != "" || in.Attr("id") == "" {
			continue
		}
		n, _ := strconv.Atoi(in.Attr("bytes"))
		return info{id: in.Attr("id"), typ: in.Attr("type"), bytes: n}, true
	}
	return info{}, false
}

// metadataChanged takes an avatar a client published with XEP-0084 into
// the vCard (§3.1).
func (m *Module) metadataChanged(ctx context.Context, c pep.Change) {
	user := c.Owner.Localpart()
	if c.Cleared || len(c.Published) == 0 {
		return
	}
	in, ok := pickInfo(c.Published[len(c.Published)-1].XML)
	if !ok {
		m.hashes.Add(user, noAvatar)
		if err := m.setPhoto(ctx, user, "", ""); err != nil {
			m.log.Warn("vCard photo not removed", "user", user, "err", err)
			return
		}
		m.converted.Add(ctx, 1, fromPEP)
		return
	}
	data, _, err := m.pep.NodeItems(ctx, c.Owner, nodeData)
	if err != nil {
		m.log.Warn("avatar data unreadable", "user", user, "err", err)
		return
	}
	for _, it := range data {
		if it.ID != in.id {
			continue
		}
		b64 := strings.Join(strings.Fields(wire.TextOf(wire.Parse(it.XML))), "")
		img, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || hashOf(img) != strings.ToLower(in.id) {
			m.log.Info("avatar data does not match its id: not put in the vCard", "user", user, "id", in.id)
			return
		}
		m.hashes.Add(user, hashOf(img))
		typ := in.typ
		if typ == "" {
			typ = "image/png"
		}
		if err := m.setPhoto(ctx, user, typ, b64); err != nil {
			m.log.Warn("vCard photo not set", "user", user, "err", err)
			return
		}
		m.converted.Add(ctx, 1, fromPEP)
		return
	}
	m.log.Info("avatar metadata names no published data: not put in the vCard", "user", user, "id", in.id)
}

func hashOf(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

var (
	vcardName = xml.Name{Space: vcard.NS, Local: "vCard"}
	photoName = xml.Name{Space: vcard.NS, Local: "PHOTO"}
)

// setPhoto makes the PHOTO of user's stored vCard typ and b64, or removes
// it when typ is empty; the rest of the vCard stays. It writes the store
// directly: the vCard module's watchers do not hear of it.
func (m *Module) setPhoto(ctx context.Context, user, typ, b64 string) error {
	limit := m.h.Config().Limits.VCard.MaxBytes
	return m.h.Store().UpdateUserData(ctx, user, vcard.Bucket, vcard.Key, func(cur []storage.Datum) ([]storage.Datum, error) {
		var inner []xml.Token
		for _, d := range cur {
			if el := element(string(d.Value)); d.Key == vcard.Key && el != nil && el.Start.Name == vcardName {
				inner = without(el.Inner, photoName)
			}
		}
		if typ == "" && inner == nil {
			return nil, nil // no vCard, nothing to remove
		}
		if typ != "" {
			p := xml.StartElement{Name: photoName}
			t := xml.StartElement{Name: xml.Name{Space: vcard.NS, Local: "TYPE"}}
			v := xml.StartElement{Name: xml.Name{Space: vcard.NS, Local: "BINVAL"}}
			inner = append(inner, p, t, xml.CharData(typ), t.End(), v, xml.CharData(b64), v.End(), p.End())
		}
		st := xml.StartElement{Name: vcardName}
		x := wire.Serialize(append(append([]xml.Token{st}, inner...), st.End()), math.MaxInt)
		if len(x) > limit {
			return nil, fmt.Errorf("avatars: the vCard with the photo would have %d bytes, over limits.vcard.max_bytes (%d)", len(x), limit)
		}
		return []storage.Datum{{Key: vcard.Key, Value: []byte(x)}}, nil
	})
}

// photoOf reads the PHOTO of a vCard: its type and its base64 text, white
// space removed; ok is false without one (or with an external URI).
func photoOf(x string) (typ, b64 string, ok bool) {
	el := element(x)
	if el == nil {
		return "", "", false
	}
	p := el.Sub(photoName)
	if p == nil {
		return "", "", false
	}
	bin, has := p.Text(xml.Name{Space: vcard.NS, Local: "BINVAL"})
	if !has {
		return "", "", false
	}
	typ, _ = p.Text(xml.Name{Space: vcard.NS, Local: "TYPE"})
	return strings.TrimSpace(typ), strings.Join(strings.Fields(bin), ""), true
}

// vcardStored publishes the photo of a vCard a client stored to PEP
// (§3.2).
func (m *Module) vcardStored(ctx context.Context, user, x string) {
	owner, err := jid.New(user, m.domain.Domainpart(), "")
	if err != nil {
		return
	}
	typ, b64, ok := photoOf(x)
	if !ok {
		if m.hash(ctx, user) == noAvatar {
			return
		}
		m.hashes.Add(user, noAvatar)
		empty := xml.StartElement{Name: xml.Name{Space: nodeMeta, Local: "metadata"}}
		if err := m.pep.Publish(ctx, owner, nodeMeta, pep.Item{XML: wire.Serialize([]xml.Token{empty, empty.End()}, math.MaxInt)}, nil); err != nil {
			m.log.Warn("empty avatar metadata not published", "user", user, "err", err)
			return
		}
		m.converted.Add(ctx, 1, fromVCard)
		return
	}
	img, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(img) == 0 {
		m.log.Info("vCard photo is not base64: not published to PEP", "user", user)
		return
	}
	if typ == "" {
		typ = "image/png"
	}
	id := hashOf(img)
	d := xml.StartElement{Name: xml.Name{Space: nodeData, Local: "data"}}
	if err := m.pep.Publish(ctx, owner, nodeData, pep.Item{ID: id, XML: wire.Serialize([]xml.Token{d, xml.CharData(b64), d.End()}, math.MaxInt)}, nil); err != nil {
		m.log.Warn("vCard photo not published to PEP", "user", user, "err", err)
		return
	}
	meta := xml.StartElement{Name: xml.Name{Space: nodeMeta, Local: "metadata"}}
	in := xml.StartElement{Name: xml.Name{Space: nodeMeta, Local: "info"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "id"}, Value: id},
		{Name: xml.Name{Local: "bytes"}, Value: strconv.Itoa(len(img))},
		{Name: xml.Name{Local: "type"}, Value: typ},
	}}
	if err := m.pep.Publish(ctx, owner, nodeMeta, pep.Item{ID: id, XML: wire.Serialize([]xml.Token{meta, in, in.End(), meta.End()}, math.MaxInt)}, nil); err != nil {
		m.log.Warn("avatar metadata not published", "user", user, "err", err)
		return
	}
	m.hashes.Add(user, id)
	m.converted.Add(ctx, 1, fromVCard)
}

// The attributes of the converted counter.
var (
	fromPEP   = metric.WithAttributes(attribute.String("from", "pep"))
	fromVCard = metric.WithAttributes(attribute.String("from", "vcard"))
)

// hash returns the account's avatar hash, noAvatar for none: from the
// cache, else the PEP metadata, else the vCard.
func (m *Module) hash(ctx context.Context, user string) string {
	if h, ok := m.hashes.Get(user); ok {
		return h
	}
	owner, err := jid.New(user, m.domain.Domainpart(), "")
	if err != nil {
		return noAvatar
	}
	h := noAvatar
	meta, found, err := m.pep.NodeItems(ctx, owner, nodeMeta)
	switch {
	case err != nil:
		return noAvatar // not cached: read again next time
	case found && len(meta) > 0:
		if in, ok := pickInfo(meta[len(meta)-1].XML); ok {
			h = strings.ToLower(in.id)
		}
	default:
		raw, err := m.h.Store().UserDatum(ctx, user, vcard.Bucket, vcard.Key)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return noAvatar
		}
		if _, b64, ok := photoOf(string(raw)); ok {
			if img, err := base64.StdEncoding.DecodeString(b64); err == nil && len(img) > 0 {
				h = hashOf(img)
			}
		}
	}
	m.hashes.Add(user, h)
	return h
}

var (
	updateName = xml.Name{Space: nsUpdate, Local: "x"}
	photoUpd   = xml.Name{Space: nsUpdate, Local: "photo"}
)

// RewritePresence implements modules.PresenceRewriter (§4).
func (m *Module) RewritePresence(ctx context.Context, from modules.Session, el *wire.Element) *wire.Element {
	if m.pep == nil || el.Start.Name.Local != presenceEl || el.Attr("type") != "" {
		return nil
	}
	x := el.Sub(updateName)
	if x != nil && x.Child(photoUpd) != nil {
		return nil // the client's own photo, empty or not
	}
	h := m.hash(ctx, from.JID().Localpart())
	if h == noAvatar {
		return nil
	}
	// A copy: the presence's tokens without an empty x, and ours.
	inner := el.Inner
	if x != nil {
		inner = without(el.Inner, updateName)
	}
	xs, ps := xml.StartElement{Name: updateName}, xml.StartElement{Name: photoUpd}
	out := make([]xml.Token, 0, len(inner)+5)
	out = append(append(out, inner...), xs, ps, xml.CharData(h), ps.End(), xs.End())
	m.hashed.Add(ctx, 1)
	return &wire.Element{Start: el.Start.Copy(), Inner: out}
}

// without returns inner without its child elements named name.
func without(inner []xml.Token, name xml.Name) []xml.Token {
	out := make([]xml.Token, 0, len(inner))
	depth, skip := 0, false
	for _, t := range inner {
		switch t := t.(type) {
		case xml.StartElement:
			if depth == 0 && t.Name == name {
				skip = true
			}
			depth++
		case xml.EndElement:
			depth--
			if depth == 0 && skip {
				skip = false
				continue
			}
		}
		if !skip {
			out = append(out, t)
		}
	}
	return out
}
