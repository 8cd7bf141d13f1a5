package pep

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"sort"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// storeError maps a storage failure to the error the requester sees: below
// the disk floor resource-constraint (wait), anything else internal.
func storeError(err error) error {
	var pe pubsubError
	if errors.As(err, &pe) {
		return pe
	}
	if errors.Is(err, storage.ErrNoSpace) {
		return errorOf(stanza.Wait, stanza.ResourceConstraint, "", "the server is short of disk space")
	}
	return err
}

// record reads a node's record; storage.ErrNotFound when there is none.
func (m *Module) record(ctx context.Context, user, node string) (record, error) {
	b, err := m.store.UserDatum(ctx, user, bucket, recordKey(node))
	if err != nil {
		return record{}, err
	}
	return decodeRecord(b)
}

// nodes lists an account's node names.
func (m *Module) nodes(ctx context.Context, user string) ([]string, error) {
	keys, err := m.store.UserDataKeys(ctx, user, bucket, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range keys {
		if isRecordKey(k) {
			out = append(out, nodeOfRecordKey(k))
		}
	}
	return out, nil
}

// mayRead checks the node's access model for requester (XEP-0060 §4.5,
// §6.5.9): the owner always; open: anyone; presence: a contact with a
// subscription from or both in the owner's roster; whitelist: nobody else,
// as PEP has no affiliations to edit.
func (m *Module) mayRead(ctx context.Context, owner, requester jid.JID, c nodeConfig) error {
	if requester.Bare().Equal(owner) || c.Access == accessOpen {
		return nil
	}
	if c.Access == accessPresence && m.subscribed(ctx, owner, requester) {
		return nil
	}
	if c.Access == accessPresence {
		return errorOf(stanza.Auth, stanza.NotAuthorized, "presence-subscription-required", "")
	}
	return errorOf(stanza.Cancel, stanza.NotAllowed, "closed-node", "")
}

// subscribed reports whether contact receives owner's presence.
func (m *Module) subscribed(ctx context.Context, owner, contact jid.JID) bool {
	it, err := m.store.RosterItem(ctx, owner.Localpart(), contact.Bare().String())
	return err == nil && (it.Subscription == storage.SubFrom || it.Subscription == storage.SubBoth)
}

// newID is an item id for a publish without one.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// publishOptions reads the publish-options form beside the publish, if any.
func publishOptions(siblings []*elem) (map[string]string, error) {
	for _, s := range siblings {
		if !s.is(nsPubsub, "publish-options") {
			continue
		}
		x := s.child(nsXData, "x")
		if x == nil {
			return nil, nil
		}
		ft, vals := formValues(x)
		if ft != formPublishOpt {
			return nil, errorOf(stanza.Modify, stanza.BadRequest, "invalid-options", "the FORM_TYPE of publish-options is "+formPublishOpt)
		}
		return vals, nil
	}
	return nil, nil
}

// publish (XEP-0060 §7.1, XEP-0163 §7): the account's item goes into the
// node, created when absent with publish-options as its configuration; the
// node's subscribers are notified.
func (m *Module) publish(ctx context.Context, r *request) ([]xml.Token, error) {
	if err := r.ownerOnly(); err != nil {
		return nil, err
	}
	node, err := r.nodeName()
	if err != nil {
		return nil, err
	}
	var its []*elem
	for _, k := range r.verb.kids {
		if k.is(nsPubsub, "item") {
			its = append(its, k)
		}
	}
	if len(its) > 1 {
		return nil, errorOf(stanza.Modify, stanza.BadRequest, "invalid-payload", "one item per publish")
	}
	it := item{ID: newID(), Published: time.Now().UTC(), Publisher: r.from.Bare().String()}
	var payload []*elem
	if len(its) == 1 {
		if id := its[0].attr("id"); id != "" {
			if len(id) > maxItemID {
				return nil, errorOf(stanza.Modify, stanza.NotAcceptable, "", "item ids are at most 1024 bytes")
			}
			it.ID = id
		}
		payload = its[0].kids
	}
	lim := m.limits()
	if len(payload) > 1 {
		return nil, errorOf(stanza.Modify, stanza.BadRequest, "invalid-payload", "an item carries one payload element")
	}
	if len(payload) == 1 {
		it.XML = wire.Serialize(payload[0].toks, lim.MaxItemBytes)
		if it.XML == "" {
			return nil, errorOf(stanza.Modify, stanza.NotAcceptable, "payload-too-big", "")
		}
	}
	opts, err := publishOptions(r.siblings)
	if err != nil {
		return nil, err
	}
	if err := m.put(ctx, r.owner, node, it, opts, true); err != nil {
		return nil, err
	}
	m.changed(ctx, Change{Owner: r.owner, Node: node, Published: []Item{{ID: it.ID, XML: it.XML}}})
	pub := xml.StartElement{Name: xml.Name{Space: nsPubsub, Local: "publish"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
	ie := xml.StartElement{Name: xml.Name{Space: nsPubsub, Local: "item"}, Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: it.ID}}}
	return tokensOf(nsPubsub, pub, ie, ie.End(), pub.End()), nil
}

// put stores it in owner's node, created with opts when absent, and
// notifies the node's subscribers. strict refuses a node whose
// configuration differs from opts (XEP-0060 §7.1.5, precondition-not-met);
// otherwise opts count only for a node that is created.
func (m *Module) put(ctx context.Context, owner jid.JID, node string, it item, opts map[string]string, strict bool) error {
	user := owner.Localpart()
	defer m.lock(user)()
	var rec record
	err := m.checkRoom(ctx, user, node, len(it.XML))
	if err == nil {
		err = m.store.UpdateUserData(ctx, user, bucket, nodePrefix(node), func(cur []storage.Datum) ([]storage.Datum, error) {
			var changes []storage.Datum
			var err error
			rec, changes, err = publishChanges(cur, node, it, opts, m.limits().MaxItems, strict)
			return changes, err
		})
	}
	if err != nil {
		return storeError(err)
	}
	m.published.Add(ctx, 1)
	if rec.Config.Notify {
		m.notify(ctx, owner, node, rec.Config, eventItems(node, []item{it}, rec.Config.Payloads))
	}
	return nil
}

// checkRoom applies limits.pep.max_nodes (for a node not there yet) and
// max_account_bytes to a write of n bytes; the caller holds the account's
// lock.
func (m *Module) checkRoom(ctx context.Context, user, node string, n int) error {
	lim := m.limits()
	if _, err := m.store.UserDatum(ctx, user, bucket, recordKey(node)); errors.Is(err, storage.ErrNotFound) {
		nodes, err := m.nodes(ctx, user)
		if err != nil {
			return err
		}
		if len(nodes) >= lim.MaxNodes {
			return errorOf(stanza.Cancel, stanza.NotAllowed, "", "this account has as many PEP nodes as the server allows")
		}
	} else if err != nil {
		return err
	}
	size, err := m.store.UserDataSize(ctx, user, bucket)
	if err != nil {
		return err
	}
	if size+int64(n) > lim.MaxAccountBytes {
		return errorOf(stanza.Wait, stanza.ResourceConstraint, "", "this account's PEP data is as large as the server allows")
	}
	return nil
}

// publishChanges computes a publish's writes from the node's current
// entries (its record first, then its items): the record created or
// checked against the publish-options, the item stored (a persistent node)
// and the oldest items beyond max_items removed.
func publishChanges(cur []storage.Datum, node string, it item, opts map[string]string, limit int, strict bool) (record, []storage.Datum, error) {
	var rec record
	exists := len(cur) > 0 && cur[0].Key == recordKey(node)
	if exists {
		var err error
		if rec, err = decodeRecord(cur[0].Value); err != nil {
			return rec, nil, err
		}
		if strict && !rec.Config.matches(opts) {
			return rec, nil, errorOf(stanza.Cancel, stanza.Conflict, "precondition-not-met", "the node's configuration differs from the publish-options")
		}
		cur = cur[1:]
	} else {
		rec = record{Config: defaultConfig(), Created: it.Published}
		if err := rec.Config.apply(opts); err != nil {
			return rec, nil, errorOf(stanza.Cancel, stanza.Conflict, "precondition-not-met", err.Error())
		}
	}
	rec.Seq++
	it.Seq = rec.Seq
	rec.Last = it.ID
	var changes []storage.Datum
	if rec.Config.Persist {
		b, err := json.Marshal(it)
		if err != nil {
			return rec, nil, err
		}
		changes = append(changes, storage.Datum{Key: itemKey(node, it.ID), Value: b})
		// The items kept besides the new one, oldest first.
		var kept []item
		for _, d := range cur {
			old, err := decodeItem(d.Value)
			if err == nil && old.ID != it.ID {
				kept = append(kept, old)
			}
		}
		sort.Slice(kept, func(i, j int) bool { return kept[i].Seq < kept[j].Seq })
		for len(kept)+1 > rec.Config.maxItems(limit) {
			changes = append(changes, storage.Datum{Key: itemKey(node, kept[0].ID)})
			kept = kept[1:]
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return rec, nil, err
	}
	return rec, append(changes, storage.Datum{Key: recordKey(node), Value: b}), nil
}

// create (XEP-0060 §8.1): an empty node, with the configure form beside it
// as its configuration. A node that exists is a conflict.
func (m *Module) create(ctx context.Context, r *request) ([]xml.Token, error) {
	if err := r.ownerOnly(); err != nil {
		return nil, err
	}
	node, err := r.nodeName()
	if err != nil {
		return nil, unsupported("instant-nodes")
	}
	cfg := defaultConfig()
	for _, s := range r.siblings {
		if x := s.child(nsXData, "x"); s.is(nsPubsub, "configure") && x != nil {
			if _, vals := formValues(x); len(vals) > 0 {
				if err := cfg.apply(vals); err != nil {
					return nil, err
				}
			}
		}
	}
	user := r.owner.Localpart()
	defer m.lock(user)()
	err = m.checkRoom(ctx, user, node, 0)
	if err == nil {
		err = m.store.UpdateUserData(ctx, user, bucket, nodePrefix(node), func(cur []storage.Datum) ([]storage.Datum, error) {
			if len(cur) > 0 {
				return nil, errorOf(stanza.Cancel, stanza.Conflict, "", "the node exists")
			}
			b, err := json.Marshal(record{Config: cfg, Created: time.Now().UTC()})
			return []storage.Datum{{Key: recordKey(node), Value: b}}, err
		})
	}
	return nil, storeError(err)
}

// items (XEP-0060 §6.5): the node's items, all or the newest max_items, or
// those asked for by id, oldest first, for a requester the access model
// lets in.
func (m *Module) items(ctx context.Context, r *request) ([]xml.Token, error) {
	node, err := r.nodeName()
	if err != nil {
		return nil, err
	}
	user := r.owner.Localpart()
	cur, err := m.store.UserData(ctx, user, bucket, nodePrefix(node))
	if err != nil {
		return nil, err
	}
	if len(cur) == 0 || cur[0].Key != recordKey(node) {
		return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "", "")
	}
	rec, err := decodeRecord(cur[0].Value)
	if err != nil {
		return nil, err
	}
	if err := m.mayRead(ctx, r.owner, r.from, rec.Config); err != nil {
		return nil, err
	}
	var all []item
	for _, d := range cur[1:] {
		if it, err := decodeItem(d.Value); err == nil {
			all = append(all, it)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	var want []string
	for _, k := range r.verb.kids {
		if k.is(nsPubsub, "item") && k.attr("id") != "" {
			want = append(want, k.attr("id"))
		}
	}
	if len(want) > 0 {
		var picked []item
		for _, it := range all {
			for _, id := range want {
				if it.ID == id {
					picked = append(picked, it)
				}
			}
		}
		all = picked
	} else if n := atoiOr(r.verb.attr("max_items"), 0); n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	return tokensOf(nsPubsub, itemsTokens(nsPubsub, node, all, true)...), nil
}

func atoiOr(s string, def int) int {
	n := 0
	if s == "" {
		return def
	}
	for _, c := range s {
		if c < '0' || c > '9' || n > 1<<20 {
			return def
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// itemsTokens renders <items node=…> with its items, in space (pubsub for
// a retrieval, pubsub#event for a notification).
func itemsTokens(space, node string, its []item, payloads bool) []xml.Token {
	st := xml.StartElement{Name: xml.Name{Space: space, Local: "items"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
	toks := []xml.Token{st}
	for _, it := range its {
		ie := xml.StartElement{Name: xml.Name{Space: space, Local: "item"}, Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: it.ID}}}
		if space == nsEvent && it.Publisher != "" {
			ie.Attr = append(ie.Attr, xml.Attr{Name: xml.Name{Local: "publisher"}, Value: it.Publisher})
		}
		toks = append(toks, ie)
		if payloads {
			toks = append(toks, wire.Parse(it.XML)...)
		}
		toks = append(toks, ie.End())
	}
	return append(toks, st.End())
}

// retract (XEP-0060 §7.2): the owner removes items; with notify="true" (or
// the node's pubsub#notify_retract) subscribers hear of it.
func (m *Module) retract(ctx context.Context, r *request) error {
	if err := r.ownerOnly(); err != nil {
		return err
	}
	node, err := r.nodeName()
	if err != nil {
		return err
	}
	var ids []string
	for _, k := range r.verb.kids {
		if k.is(nsPubsub, "item") && k.attr("id") != "" {
			ids = append(ids, k.attr("id"))
		}
	}
	if len(ids) == 0 {
		return errorOf(stanza.Modify, stanza.BadRequest, "item-required", "")
	}
	n := r.verb.attr("notify")
	if err := m.remove(ctx, r.owner, node, ids, n == "1" || n == "true", true); err != nil {
		return err
	}
	m.changed(ctx, Change{Owner: r.owner, Node: node, Retracted: ids})
	return nil
}

// remove retracts the items ids of owner's node and notifies subscribers
// when notify is set or the node notifies retractions. strict makes an id
// that is not there item-not-found; otherwise it is skipped.
func (m *Module) remove(ctx context.Context, owner jid.JID, node string, ids []string, notify, strict bool) error {
	user := owner.Localpart()
	defer m.lock(user)()
	var rec record
	var gone []string
	err := m.store.UpdateUserData(ctx, user, bucket, nodePrefix(node), func(cur []storage.Datum) ([]storage.Datum, error) {
		if len(cur) == 0 || cur[0].Key != recordKey(node) {
			if !strict {
				return nil, nil
			}
			return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "", "no such node")
		}
		var err error
		if rec, err = decodeRecord(cur[0].Value); err != nil {
			return nil, err
		}
		var changes []storage.Datum
		gone = gone[:0]
		for _, id := range ids {
			found := false
			for _, d := range cur[1:] {
				found = found || d.Key == itemKey(node, id)
			}
			switch {
			case found:
				changes = append(changes, storage.Datum{Key: itemKey(node, id)})
				gone = append(gone, id)
			case strict:
				return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "", "no such item")
			}
		}
		return changes, nil
	})
	if err != nil {
		return storeError(err)
	}
	if len(gone) > 0 && (notify || rec.Config.NotifyRetract) {
		st := xml.StartElement{Name: xml.Name{Space: nsEvent, Local: "items"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
		toks := []xml.Token{st}
		for _, id := range gone {
			re := xml.StartElement{Name: xml.Name{Space: nsEvent, Local: "retract"}, Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: id}}}
			toks = append(toks, re, re.End())
		}
		m.notify(ctx, owner, node, rec.Config, append(toks, st.End()))
	}
	return nil
}

// configure (XEP-0060 §8.2): the owner reads the node's configuration form,
// or submits a new one (a cancel changes nothing).
func (m *Module) configure(ctx context.Context, r *request, set bool) ([]xml.Token, error) {
	if err := r.ownerOnly(); err != nil {
		return nil, err
	}
	node, err := r.nodeName()
	if err != nil {
		return nil, err
	}
	user := r.owner.Localpart()
	if !set {
		rec, err := m.record(ctx, user, node)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "", "")
		} else if err != nil {
			return nil, err
		}
		c := xml.StartElement{Name: xml.Name{Space: nsOwner, Local: "configure"}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: node}}}
		toks := append([]xml.Token{c}, rec.Config.form()...)
		return tokensOf(nsOwner, append(toks, c.End())...), nil
	}
	x := r.verb.child(nsXData, "x")
	if x == nil {
		return nil, errorOf(stanza.Modify, stanza.BadRequest, "", "a configuration is a data form")
	}
	if x.attr("type") == "cancel" {
		return nil, nil
	}
	ft, vals := formValues(x)
	if ft != "" && ft != formNodeConfig {
		return nil, errorOf(stanza.Modify, stanza.BadRequest, "", "the FORM_TYPE of a node configuration is "+formNodeConfig)
	}
	defer m.lock(user)()
	err = m.store.UpdateUserData(ctx, user, bucket, nodePrefix(node), func(cur []storage.Datum) ([]storage.Datum, error) {
		if len(cur) == 0 || cur[0].Key != recordKey(node) {
			return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "", "")
		}
		rec, err := decodeRecord(cur[0].Value)
		if err != nil {
			return nil, err
		}
		if err := rec.Config.apply(vals); err != nil {
			return nil, err
		}
		changes := trimItems(cur[1:], node, rec.Config.maxItems(m.limits().MaxItems))
		b, err := json.Marshal(rec)
		return append(changes, storage.Datum{Key: recordKey(node), Value: b}), err
	})
	return nil, storeError(err)
}

// trimItems removes the oldest items past keep.
func trimItems(cur []storage.Datum, node string, keep int) []storage.Datum {
	var all []item
	for _, d := range cur {
		if it, err := decodeItem(d.Value); err == nil {
			all = append(all, it)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	var changes []storage.Datum
	for len(all) > keep {
		changes = append(changes, storage.Datum{Key: itemKey(node, all[0].ID)})
		all = all[1:]
	}
	return changes
}

// deleteNode (XEP-0060 §8.4) removes a node and its items; subscribers get
// <delete/> when the node notifies deletions.
func (m *Module) deleteNode(ctx context.Context, r *request) error {
	return m.clear(ctx, r, true)
}

// purge (XEP-0060 §8.5) removes a node's items and keeps the node.
func (m *Module) purge(ctx context.Context, r *request) error {
	return m.clear(ctx, r, false)
}

func (m *Module) clear(ctx context.Context, r *request, node bool) error {
	if err := r.ownerOnly(); err != nil {
		return err
	}
	name, err := r.nodeName()
	if err != nil {
		return err
	}
	user := r.owner.Localpart()
	defer m.lock(user)()
	var rec record
	err = m.store.UpdateUserData(ctx, user, bucket, nodePrefix(name), func(cur []storage.Datum) ([]storage.Datum, error) {
		if len(cur) == 0 || cur[0].Key != recordKey(name) {
			return nil, errorOf(stanza.Cancel, stanza.ItemNotFound, "", "")
		}
		var err error
		if rec, err = decodeRecord(cur[0].Value); err != nil {
			return nil, err
		}
		var changes []storage.Datum
		for _, d := range cur {
			if d.Key != recordKey(name) || node {
				changes = append(changes, storage.Datum{Key: d.Key})
			}
		}
		if !node {
			rec.Last = ""
			b, err := json.Marshal(rec)
			if err != nil {
				return nil, err
			}
			changes = append(changes, storage.Datum{Key: recordKey(name), Value: b})
		}
		return changes, nil
	})
	if err != nil {
		return storeError(err)
	}
	local := "purge"
	if node {
		local = "delete"
	}
	if !node || rec.Config.NotifyDelete {
		ev := xml.StartElement{Name: xml.Name{Space: nsEvent, Local: local}, Attr: []xml.Attr{{Name: xml.Name{Local: "node"}, Value: name}}}
		m.notify(ctx, r.owner, name, rec.Config, []xml.Token{ev, ev.End()})
	}
	m.changed(ctx, Change{Owner: r.owner, Node: name, Cleared: true})
	return nil
}
