package modules

import (
	"context"
	"errors"
	"slices"
	"strings"
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

// AccountNodeHandler answers disco#info and disco#items for nodes of local
// accounts' bare JIDs (PEP nodes, say), as NodeHandler does for the
// server's; account is the bare JID asked about.
type AccountNodeHandler interface {
	AccountDiscoInfo(ctx context.Context, requester, account jid.JID, node string) (DiscoInfo, error)
	AccountDiscoItems(ctx context.Context, requester, account jid.JID, node string) ([]items.Item, error)
}

// Disco collects what the server JID and the accounts' bare JIDs
// advertise.
type Disco struct {
	mu         sync.RWMutex
	identities []info.Identity
	features   []string
	handlers   []NodeHandler
	// What each account's bare JID advertises (XEP-0030 §3.1: identity
	// account/registered) and who answers for its nodes.
	accountIdentities []info.Identity
	accountFeatures   []string
	accountHandlers   []AccountNodeHandler
}

// accountIdentity is the identity of a local account's bare JID.
var accountIdentity = info.Identity{Category: "account", Type: "registered"}

// AddAccountIdentity advertises an identity of every account's bare JID,
// beside account/registered (PEP's pubsub/pep, XEP-0163 §6.1).
func (d *Disco) AddAccountIdentity(id info.Identity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.accountIdentities = append(d.accountIdentities, id)
}

// AddAccountFeature advertises features of every account's bare JID.
func (d *Disco) AddAccountFeature(vars ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range vars {
		if !slices.Contains(d.accountFeatures, v) {
			d.accountFeatures = append(d.accountFeatures, v)
		}
	}
}

// AddAccountNodeHandler registers h for nodes of the accounts' bare JIDs;
// items of the root node are the union of what every handler lists for "".
func (d *Disco) AddAccountNodeHandler(h AccountNodeHandler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.accountHandlers = append(d.accountHandlers, h)
}

// AccountInfo answers disco#info on the bare JID of a local account (which
// the caller knows exists). The root node lists the account identity and
// the features the modules declared, sorted as XEP-0115 orders them.
func (d *Disco) AccountInfo(ctx context.Context, requester, account jid.JID, node string) (DiscoInfo, error) {
	d.mu.RLock()
	handlers := slices.Clone(d.accountHandlers)
	out := DiscoInfo{Identities: append([]info.Identity{accountIdentity}, d.accountIdentities...), Features: slices.Clone(d.accountFeatures)}
	d.mu.RUnlock()
	if node == "" {
		slices.Sort(out.Features)
		return out, nil
	}
	return firstInfo(handlers, func(h AccountNodeHandler) (DiscoInfo, error) {
		return h.AccountDiscoInfo(ctx, requester, account, node)
	})
}

// AccountItems answers disco#items on the bare JID of a local account.
func (d *Disco) AccountItems(ctx context.Context, requester, account jid.JID, node string) ([]items.Item, error) {
	d.mu.RLock()
	handlers := slices.Clone(d.accountHandlers)
	d.mu.RUnlock()
	return unionItems(handlers, node, func(h AccountNodeHandler) ([]items.Item, error) {
		return h.AccountDiscoItems(ctx, requester, account, node)
	})
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
	if node != "" && strings.HasPrefix(node, CapsNode+"#") {
		if _, ver := d.Caps(); node == CapsNode+"#"+ver {
			node = ""
		}
	}
	if node == "" {
		slices.Sort(out.Features)
		return out, nil
	}
	return firstInfo(handlers, func(h NodeHandler) (DiscoInfo, error) { return h.DiscoInfo(ctx, requester, node) })
}

// firstInfo is the answer of the first handler that knows the node.
func firstInfo[H any](handlers []H, info func(H) (DiscoInfo, error)) (DiscoInfo, error) {
	for _, h := range handlers {
		di, err := info(h)
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
	return unionItems(handlers, node, func(h NodeHandler) ([]items.Item, error) { return h.DiscoItems(ctx, requester, node) })
}

// unionItems is, for the root node, what every handler lists, and for
// another node the answer of the first handler that knows it.
func unionItems[H any](handlers []H, node string, list func(H) ([]items.Item, error)) ([]items.Item, error) {
	var all []items.Item
	found := node == ""
	for _, h := range handlers {
		its, err := list(h)
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

// ServiceItem is the NodeHandler of a service beside the server (a group
// chat or upload service on its own domain, a component): the server's
// disco#items root lists it (XEP-0030 §4.2; XEP-0045 §6.1, XEP-0363 §2
// ask the server to), and it serves no node of the server JID, its own
// disco being answered at its JID.
type ServiceItem struct {
	JID  jid.JID
	Name string
}

var _ NodeHandler = ServiceItem{}

// DiscoInfo implements NodeHandler: no node.
func (ServiceItem) DiscoInfo(context.Context, jid.JID, string) (DiscoInfo, error) {
	return DiscoInfo{}, ErrNoNode
}

// DiscoItems implements NodeHandler: the service is an item of the root
// node.
func (s ServiceItem) DiscoItems(_ context.Context, _ jid.JID, node string) ([]items.Item, error) {
	if node != "" {
		return nil, ErrNoNode
	}
	return []items.Item{{JID: s.JID, Name: s.Name}}, nil
}
