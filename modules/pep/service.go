package pep

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/storage"
)

// The PEP service as other modules use it: XEP-0402's conversion of
// bookmarks (modules/bookmarks) and XEP-0398's of avatars (modules/vcard)
// read an account's node, publish to it and retract from it on the
// account's behalf, and are told of what the account's own clients change
// in the nodes they watch. A module finds the service on the Host with
// modules.ModuleFinder and the name "pep".
//
// A change made through the service notifies the node's subscribers as the
// account's own publish would, and is not reported to the watchers: a
// conversion that mirrors one node into another cannot loop.

// Item is one item of a node: its id and its payload, serialised (empty
// for an item without one).
type Item struct {
	ID, XML string
}

// Change is what one request of an account's client did to one of its
// nodes: the items it published, the ids it retracted, or all of them
// removed (a purge or a delete of the node, Cleared).
type Change struct {
	Owner     jid.JID // the account's bare JID
	Node      string
	Published []Item
	Retracted []string
	Cleared   bool
}

// Watcher is told of a change once it is stored and notified. It runs on
// the stream of the client that made it.
type Watcher func(ctx context.Context, c Change)

// watchers are the watchers by node; set while the modules start.
type watchers struct {
	mu     sync.RWMutex
	byNode map[string][]Watcher
}

// Watch has fn told of the changes of node in every account.
func (m *Module) Watch(node string, fn Watcher) {
	m.watch.mu.Lock()
	defer m.watch.mu.Unlock()
	if m.watch.byNode == nil {
		m.watch.byNode = make(map[string][]Watcher)
	}
	m.watch.byNode[node] = append(m.watch.byNode[node], fn)
}

// changed tells the node's watchers of c.
func (m *Module) changed(ctx context.Context, c Change) {
	m.watch.mu.RLock()
	fns := m.watch.byNode[c.Node]
	m.watch.mu.RUnlock()
	for _, fn := range fns {
		fn(ctx, c)
	}
}

// NodeItems returns the items of owner's node, oldest first; found is
// false when the node does not exist.
func (m *Module) NodeItems(ctx context.Context, owner jid.JID, node string) (its []Item, found bool, err error) {
	cur, err := m.store.UserData(ctx, owner.Localpart(), bucket, nodePrefix(node))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if len(cur) == 0 || cur[0].Key != recordKey(node) {
		return nil, false, nil
	}
	var all []item
	for _, d := range cur[1:] {
		if it, err := decodeItem(d.Value); err == nil {
			all = append(all, it)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	for _, it := range all {
		its = append(its, Item{ID: it.ID, XML: it.XML})
	}
	return its, true, nil
}

// Publish stores it in owner's node on the account's behalf and notifies
// the node's subscribers. A node that does not exist is created with the
// publish-options opts (pubsub#access_model and the like); one that exists
// keeps its configuration, whatever opts say. The limits of an account's
// own publish apply; their errors are stanza errors.
func (m *Module) Publish(ctx context.Context, owner jid.JID, node string, it Item, opts map[string]string) error {
	if it.ID == "" {
		it.ID = newID()
	}
	return m.put(ctx, owner.Bare(), node, item{ID: it.ID, XML: it.XML, Published: time.Now().UTC(), Publisher: owner.Bare().String()}, opts, false)
}

// Retract removes the items ids of owner's node, those that are there,
// and notifies the node's subscribers of them.
func (m *Module) Retract(ctx context.Context, owner jid.JID, node string, ids []string) error {
	return m.remove(ctx, owner.Bare(), node, ids, true, false)
}
