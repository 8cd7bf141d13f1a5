// Package pep is XEP-0163 Personal Eventing Protocol (version 1.2.2) on the
// subset of XEP-0060 Publish-Subscribe (version 1.26) that PEP needs: every
// local account's bare JID is a pubsub service of its own nodes, which
// XEP-0084 avatars, XEP-0402 bookmarks, XEP-0384 OMEMO device lists and
// bundles, XEP-0172 nicknames and XEP-0223 private data live on.
//
// The account publishes (the node is created on the first publish, with
// publish-options as its configuration, XEP-0060 §7.1.5), retracts, reads
// its items, configures, purges and deletes its nodes (pubsub#owner); any
// entity the node's access model lets in (open, presence: a contact with a
// subscription from or both, whitelist: the owner alone) reads its items,
// and receives its notifications when its client asked for them through
// XEP-0115 caps (node+"+notify", XEP-0163 §4.2). The last item of each node
// goes to a session when it becomes available and when its caps become
// known (§4.3.2), and to a contact's available sessions when the account
// approves the contact's presence subscription (§6.1.1), stamped with a
// XEP-0203 delay of when it was published (XEP-0060 §6.1.7). Explicit subscriptions, affiliations and collection nodes
// are not offered (feature-not-implemented with <unsupported/>): the clients
// of PEP use the implicit, presence-based ones.
//
// What an account keeps is bounded by limits.pep.*: its nodes, the items of
// a node, the bytes of one payload and of the whole of its PEP data.
package pep

import (
	"context"
	"encoding/xml"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel/metric"
	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/disco/items"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
)

// Namespaces of PubSub, PEP and what they ride on.
const (
	nsPubsub       = "http://jabber.org/protocol/pubsub"
	nsOwner        = nsPubsub + "#owner"
	nsEvent        = nsPubsub + "#event"
	nsErrors       = nsPubsub + "#errors"
	nsXData        = "jabber:x:data"
	nsCaps         = "http://jabber.org/protocol/caps"
	nsDiscoInfo    = "http://jabber.org/protocol/disco#info"
	formNodeConfig = nsPubsub + "#node_config"
	formPublishOpt = nsPubsub + "#publish-options"
)

// features are the pubsub features the account's bare JID advertises
// (XEP-0060 §10); publish-options is what Conversations checks before it
// trusts a server with OMEMO's access model.
var features = []string{
	nsPubsub + "#access-open", nsPubsub + "#access-presence", nsPubsub + "#access-whitelist",
	nsPubsub + "#auto-create", nsPubsub + "#config-node", nsPubsub + "#config-node-max", nsPubsub + "#create-and-configure",
	nsPubsub + "#create-nodes", nsPubsub + "#delete-items", nsPubsub + "#delete-nodes",
	nsPubsub + "#filtered-notifications", nsPubsub + "#item-ids", nsPubsub + "#last-published",
	nsPubsub + "#persistent-items", nsPubsub + "#presence-notifications", nsPubsub + "#publish",
	nsPubsub + "#publish-options", nsPubsub + "#purge-nodes", nsPubsub + "#retract-items",
	nsPubsub + "#retrieve-items", nsPubsub,
}

// Module is PEP on the module API: IQ routes for pubsub and pubsub#owner on
// the account's own JID and on any local bare JID, a presence hook for caps
// and last items, the disco of the bare JIDs.
type Module struct {
	// published counts items published (by clients and by other modules);
	// notified the notifications delivered.
	published, notified metric.Int64Counter
	h                   modules.Host
	req                 modules.IQRequester
	store               storage.Store
	log                 *slog.Logger
	domain              jid.JID
	caps                *capsCache

	ctx  context.Context // ends at Stop: caps queries
	stop context.CancelFunc
	wg   sync.WaitGroup

	watch watchers // service.go

	// locks serialises the changes of one account's PEP service on this
	// server, so that the node count and size bounds hold.
	locks sync.Map // username → *sync.Mutex
}

// New returns the PEP module.
func New() modules.Module { return &Module{} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.AccountIQHandler = (*Module)(nil)
	_ modules.BareJIDIQHandler = (*Module)(nil)
	_ modules.PresenceHook     = (*Module)(nil)
	_ modules.SubscriptionHook = (*Module)(nil)
	_ modules.AccountFeatures  = (*Module)(nil)
	_ modules.AccountHook      = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "pep" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.published = modules.Counter(h, "adhocd.pep.published", "Items published to PEP nodes (XEP-0163), by clients and by the server's conversions.")
	m.notified = modules.Counter(h, "adhocd.pep.notifications", "PEP event notifications delivered to sessions, last items on login among them.")
	m.h, m.store, m.log, m.domain = h, h.Store(), h.Logger(), h.Domain()
	m.req, _ = h.(modules.IQRequester)
	m.caps = newCapsCache()
	m.ctx, m.stop = context.WithCancel(context.Background())
	h.Disco().AddAccountIdentity(info.Identity{Category: "pubsub", Type: "pep"})
	h.Disco().AddAccountNodeHandler(m)
	return nil
}

// Stop implements modules.Module: caps queries in flight are abandoned.
func (m *Module) Stop(context.Context) error {
	m.stop()
	m.wg.Wait()
	return nil
}

// AccountFeatures implements modules.AccountFeatures.
func (m *Module) AccountFeatures() []string { return features }

// AccountCreated implements modules.AccountHook.
func (m *Module) AccountCreated(context.Context, jid.JID) {}

// AccountDeleted implements modules.AccountHook: the account's nodes went
// with it (storage.UserData); its lock goes too.
func (m *Module) AccountDeleted(_ context.Context, account jid.JID) {
	m.locks.Delete(account.Localpart())
}

func (m *Module) lock(user string) func() {
	mu, _ := m.locks.LoadOrStore(user, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

var routes = []modules.Route{
	{Type: stanza.GetIQ, Payload: xml.Name{Space: nsPubsub, Local: "pubsub"}},
	{Type: stanza.SetIQ, Payload: xml.Name{Space: nsPubsub, Local: "pubsub"}},
	{Type: stanza.GetIQ, Payload: xml.Name{Space: nsOwner, Local: "pubsub"}},
	{Type: stanza.SetIQ, Payload: xml.Name{Space: nsOwner, Local: "pubsub"}},
}

// AccountRoutes implements modules.AccountIQHandler: requests to the
// account's own JID, or to no one (XEP-0163 §7: a publish without 'to').
func (m *Module) AccountRoutes() []modules.Route { return routes }

// BareJIDRoutes implements modules.BareJIDIQHandler: requests to a
// contact's PEP service.
func (m *Module) BareJIDRoutes() []modules.Route { return routes }

// request is one pubsub request: whose service, who asks, and its payload.
type request struct {
	owner     jid.JID // the service: a local bare JID
	from      jid.JID // the requester's full JID
	session   modules.Session
	isOwner   bool
	verb      *elem   // publish, items, retract, create, configure, delete, purge, …
	siblings  []*elem // the pubsub element's other children (publish-options, configure)
	ownerVerb bool    // the payload was pubsub#owner
}

// HandleIQ implements both IQ capabilities.
func (m *Module) HandleIQ(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	owner := iq.To.Bare()
	if owner.Localpart() == "" {
		owner = iq.From.Bare()
	}
	kids := elements(iq.Inner)
	if len(kids) == 0 {
		return nil, errorOf(stanza.Modify, stanza.BadRequest, "", "a pubsub request names what it does")
	}
	r := &request{owner: owner, from: iq.From, session: iq.Session, isOwner: iq.From.Bare().Equal(owner),
		verb: kids[0], siblings: kids[1:], ownerVerb: iq.Payload.Name.Space == nsOwner}
	if !r.verb.is(iq.Payload.Name.Space, r.verb.start.Name.Local) {
		return nil, errorOf(stanza.Modify, stanza.BadRequest, "", "the request is in another namespace than its pubsub element")
	}
	set := iq.Type == stanza.SetIQ
	var toks []xml.Token
	var err error
	switch name := r.verb.start.Name.Local; {
	case !r.ownerVerb && set && name == "publish":
		toks, err = m.publish(ctx, r)
	case !r.ownerVerb && set && name == "retract":
		err = m.retract(ctx, r)
	case !r.ownerVerb && set && name == "create":
		toks, err = m.create(ctx, r)
	case !r.ownerVerb && !set && name == "items":
		toks, err = m.items(ctx, r)
	case r.ownerVerb && name == "configure":
		toks, err = m.configure(ctx, r, set)
	case r.ownerVerb && set && name == "delete":
		err = m.deleteNode(ctx, r)
	case r.ownerVerb && set && name == "purge":
		err = m.purge(ctx, r)
	case name == "subscribe" || name == "unsubscribe" || name == "options":
		err = unsupported("subscribe")
	case name == "subscriptions":
		err = unsupported("retrieve-subscriptions")
	case name == "affiliations":
		err = unsupported("retrieve-affiliations")
	case name == "default":
		err = unsupported("retrieve-default")
	default:
		err = errorOf(stanza.Cancel, stanza.FeatureNotImplemented, "", "not a PEP request")
	}
	if err != nil || toks == nil {
		return nil, err
	}
	return modules.Tokens(toks), nil
}

// nodeName reads and checks the verb's node attribute.
func (r *request) nodeName() (string, error) {
	n := r.verb.attr("node")
	if n == "" {
		return "", errorOf(stanza.Modify, stanza.BadRequest, "nodeid-required", "")
	}
	if len(n) > maxNodeName {
		return "", errorOf(stanza.Modify, stanza.NotAcceptable, "", "node names are at most 1024 bytes")
	}
	return n, nil
}

// maxNodeName and maxItemID bound names and ids.
const (
	maxNodeName = 1024
	maxItemID   = 1024
)

// ownerOnly is forbidden for anyone but the account (XEP-0060 §7.1.3.1).
func (r *request) ownerOnly() error {
	if !r.isOwner {
		return errorOf(stanza.Auth, stanza.Forbidden, "", "only the account may change its PEP nodes")
	}
	return nil
}

// limits returns the PEP limits in force.
func (m *Module) limits() config.PEPLimits { return m.h.Config().Limits.PEP }

// AccountDiscoInfo implements modules.AccountNodeHandler: a node's identity
// (pubsub/leaf) for those who may read it.
func (m *Module) AccountDiscoInfo(ctx context.Context, requester, account jid.JID, node string) (modules.DiscoInfo, error) {
	rec, err := m.record(ctx, account.Localpart(), node)
	if err != nil {
		return modules.DiscoInfo{}, modules.ErrNoNode
	}
	if m.mayRead(ctx, account, requester, rec.Config) != nil {
		return modules.DiscoInfo{}, modules.ErrNoNode
	}
	return modules.DiscoInfo{Identities: []info.Identity{{Category: "pubsub", Type: "leaf"}}, Features: []string{nsPubsub}}, nil
}

// AccountDiscoItems implements modules.AccountNodeHandler: the account's
// nodes the requester may read (XEP-0163 §8... disco#items on the bare JID).
func (m *Module) AccountDiscoItems(ctx context.Context, requester, account jid.JID, node string) ([]items.Item, error) {
	if node != "" {
		return nil, modules.ErrNoNode
	}
	nodes, err := m.nodes(ctx, account.Localpart())
	if err != nil {
		return nil, err
	}
	var out []items.Item
	for _, n := range nodes {
		rec, err := m.record(ctx, account.Localpart(), n)
		if err != nil || m.mayRead(ctx, account, requester, rec.Config) != nil {
			continue
		}
		out = append(out, items.Item{JID: account, Node: n})
	}
	return out, nil
}

// tokensOf wraps toks in <pubsub xmlns=space>.
func tokensOf(space string, toks ...xml.Token) []xml.Token {
	ps := xml.StartElement{Name: xml.Name{Space: space, Local: "pubsub"}}
	out := make([]xml.Token, 0, len(toks)+2)
	out = append(out, ps)
	out = append(out, toks...)
	return append(out, ps.End())
}
