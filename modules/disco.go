package modules

import (
	"context"
	"errors"
	"slices"
	"sync"

	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/jid"
)

// ErrNoNode is returned by a NodeHandler for a node it does not serve.
var ErrNoNode = errors.New("modules: no such disco node")

// DiscoInfo is the disco#info answer for one node.
type DiscoInfo struct {
	Identities []info.Identity
	Features   []string
}

// NodeHandler answers disco for the nodes it serves, per requester. An error
// that is a stanza.Error (forbidden, say) is sent to the requester as it is.
type NodeHandler interface {
	DiscoInfo(ctx context.Context, requester jid.JID, node string) (DiscoInfo, error)
	DiscoItems(ctx context.Context, requester jid.JID, node string) ([]items.Item, error)
}

// Disco collects what the server JID advertises.
type Disco struct {
	mu         sync.RWMutex
	identities []info.Identity
	features   []string
	handlers   []NodeHandler
}

// AddIdentity advertises an identity of the server JID.
func (d *Disco) AddIdentity(id info.Identity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.identities = append(d.identities, id)
}

// AddFeature advertises features of the server JID.
func (d *Disco) AddFeature(vars ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range vars {
		if !slices.Contains(d.features, v) {
			d.features = append(d.features, v)
		}
	}
}

// AddNodeHandler registers h for the nodes it serves; items of the root node
// are the union of what every handler lists for "".
func (d *Disco) AddNodeHandler(h NodeHandler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handlers = append(d.handlers, h)
}

// Info answers disco#info for node. The root node lists the server's own
// identities and features, sorted as XEP-0115 orders them.
func (d *Disco) Info(ctx context.Context, requester jid.JID, node string) (DiscoInfo, error) {
	d.mu.RLock()
	handlers := slices.Clone(d.handlers)
	out := DiscoInfo{Identities: slices.Clone(d.identities), Features: slices.Clone(d.features)}
	d.mu.RUnlock()
	if node == "" {
		slices.Sort(out.Features)
		return out, nil
	}
	for _, h := range handlers {
		di, err := h.DiscoInfo(ctx, requester, node)
		if errors.Is(err, ErrNoNode) {
			continue
		}
		return di, err
	}
	return DiscoInfo{}, ErrNoNode
}

// Items answers disco#items for node.
func (d *Disco) Items(ctx context.Context, requester jid.JID, node string) ([]items.Item, error) {
	d.mu.RLock()
	handlers := slices.Clone(d.handlers)
	d.mu.RUnlock()
	var all []items.Item
	found := node == ""
	for _, h := range handlers {
		its, err := h.DiscoItems(ctx, requester, node)
		if errors.Is(err, ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		all = append(all, its...)
		if node != "" {
			break
		}
	}
	if !found {
		return nil, ErrNoNode
	}
	return all, nil
}
