package modules

import (
	"context"
	"encoding/xml"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/wire"
)

// The capabilities below let a module take part in the router's handling of
// messages and presence: what XEP-0160 offline storage, XEP-0280 carbons
// and, later, archives (XEP-0313) and blocking (XEP-0191) need. The router
// calls them in the order the modules started.

// Session is one bound client session, as modules see it.
type Session interface {
	// JID is the session's full JID.
	JID() jid.JID
	// Deliver queues el for the session, as the router delivers a stanza:
	// the caller never waits on the client's socket. el must not change
	// afterwards.
	Deliver(el *wire.Element)
	// Reply writes el to the session from a hook or handler that runs on
	// the session's own stream (SessionReachable, HandleIQ of its request):
	// like the answers to the session's own requests, it waits for the
	// client's socket rather than filling the session's outbound queue, so
	// that a long backlog (offline messages) is paced by its reader.
	Reply(el *wire.Element)
	// Value returns what a module stored for this session under key, or nil.
	// SetValue stores it; the value lives as long as the session. A module
	// keys its values with a type of its own, as context.WithValue does.
	Value(key any) any
	SetValue(key, value any)
}

// Message is a message stanza on its way through the router.
type Message struct {
	// El is the stanza, with its from checked (RFC 6120 §8.1.2.1) and its
	// to set. It is shared with the router and with the recipients' queues:
	// a module must not change it.
	El *wire.Element
	// To is the addressee: the sender's bare JID when the message had no to.
	To jid.JID
	// Sender is the local session that sent the message, or nil when the
	// server or a module sent it.
	Sender Session
}

// MessageHook is the capability of a module that sees the messages local
// accounts send and receive (XEP-0280 Message Carbons copies them).
type MessageHook interface {
	// MessageSent runs once the router has accepted a message that a local
	// session sent for delivery.
	MessageSent(ctx context.Context, m Message)
	// MessageReceived runs once a message has reached the local account
	// user: got lists the sessions it was delivered to, none when it was
	// kept offline.
	MessageReceived(ctx context.Context, m Message, user string, got []Session)
}

// InboundMessageHook is the capability of a module that sees each message
// for a local account once, before it is delivered or kept offline, and
// may return a changed copy to deliver instead (nil: unchanged): XEP-0313
// archives it and adds the archive's XEP-0359 <stanza-id/>. msg.El must not
// be changed; a copy shares its tokens.
type InboundMessageHook interface {
	MessageInbound(ctx context.Context, msg Message, user string) *wire.Element
}

// OutboundMessageHook is the capability of a module that sees each message
// a local session sends, once the router has taken it (InterceptIn let it
// through, its type is known) and before it is delivered: XEP-0313 keeps
// the sender's copy in the archive then, so that the archive holds the
// message before any answer to it, whatever the load.
type OutboundMessageHook interface {
	MessageOutbound(ctx context.Context, m Message)
}

// PresenceRewriter is the capability of a module that adds to each
// presence a local session sends, broadcast or directed, once the
// interceptors let it through and before the router handles it; it returns
// a changed copy to route instead (nil: unchanged). XEP-0398 puts the
// account's avatar hash (XEP-0153) in available presence so. el must not
// be changed; a copy shares its tokens. It runs on the sender's stream
// and must not wait on other clients.
type PresenceRewriter interface {
	RewritePresence(ctx context.Context, from Session, el *wire.Element) *wire.Element
}

// CopyHook is the capability of a module that gives sessions copies of
// messages delivered to other sessions of their account (XEP-0280's
// received carbons). When a session's stream ends with m, a message to its
// full JID, unacknowledged (XEP-0198), the router hands m to the account's
// other sessions (RFC 6121 §8.5.3.2.1) with these rules: HasCopy reports
// whether session s of user already got a copy of m, and is skipped so that
// no client shows the message twice; Personal reports whether m is meant
// for the session it was addressed to alone (XEP-0280's <private/>), and is
// then kept offline for the account's next session instead.
type CopyHook interface {
	HasCopy(m Message, user string, s Session) bool
	Personal(m Message) bool
}

// OfflineStore is the capability of the module that keeps the messages sent
// to an account while no session of it can take them (XEP-0160). A server
// has at most one; without it such messages are answered
// service-unavailable (RFC 6121 §8.5.2.1.1).
type OfflineStore interface {
	// KeepOffline keeps m for user. It returns nil once the message is kept,
	// or the error (a stanza.Error) the sender is answered with.
	KeepOffline(ctx context.Context, m Message, user string) error
}

// OnlineHook is the capability of a module told when a session sends its
// initial presence, its "login" as users see it.
type OnlineHook interface {
	SessionOnline(ctx context.Context, s Session)
}

// PresenceHook is the capability of a module that sees the presence each
// local session broadcasts (RFC 6121 §4.2, §4.4, §4.5), once the router has
// handled it: XEP-0115 capabilities ride on it, which PEP reads. initial is
// set on a session's first available presence; el is an unavailable
// presence when the session goes unavailable. It runs on the session's
// stream and must not wait on other clients.
type PresenceHook interface {
	PresenceBroadcast(ctx context.Context, s Session, el *wire.Element, initial bool)
}

// ReachableHook is the capability of a module told when a session first
// becomes a destination of messages to its bare JID: available, with a
// non-negative priority (RFC 6121 §8.5.2). XEP-0160 delivers kept messages
// then.
type ReachableHook interface {
	SessionReachable(ctx context.Context, s Session)
}

// SubscriptionHook is the capability of a module told when a local account
// approves a contact's presence subscription (RFC 6121 §3.1.5): the
// account's session sent "subscribed" to a pending request, the account's
// roster now has the contact with a subscription from or both, and the
// contact's available resources have the account's current presence.
// XEP-0163 §6.1.1 sends the contact the last items of the account's PEP
// nodes then. owner is the account's bare JID, contact the approved bare
// JID (a local account, or a JID at a service's domain). It runs on the
// stream of the session that approved and must not wait on other clients.
type SubscriptionHook interface {
	SubscriptionApproved(ctx context.Context, owner, contact jid.JID)
}

// AccountIQHandler is the capability of a module that answers IQ requests a
// session addresses to its own bare JID, or to no one, which the server
// answers on the account's behalf (RFC 6120 §10.3.3): XEP-0280's enable and
// disable, later vCard, PEP and private storage. The routes of an IQ
// addressed to no one are looked up here first, then among the server
// JID's (IQHandler).
type AccountIQHandler interface {
	AccountRoutes() []Route
	HandleIQ(ctx context.Context, iq IQ) (xml.TokenReader, error)
}

// BareJIDIQHandler is the capability of a module that answers IQ requests
// addressed to a local account's bare JID, the requester's own or another's,
// which the server answers on the account's behalf (RFC 6121 §8.5.1): a
// contact's vCard (XEP-0054), last activity (XEP-0012), PEP nodes
// (XEP-0163) and disco#info (XEP-0030). iq.To is the addressed bare JID and
// iq.From the requester, whose right to ask the module checks; the router
// has answered a request to an account that does not exist with
// service-unavailable already. A request to the requester's own bare JID
// goes to an AccountIQHandler's route first.
type BareJIDIQHandler interface {
	BareJIDRoutes() []Route
	HandleIQ(ctx context.Context, iq IQ) (xml.TokenReader, error)
}

// StreamFeatures is the capability of a module that offers stream features
// to an authenticated stream (RFC 6120 §4.3.2), beside resource binding:
// each name is written as an empty element in its namespace,
// <local xmlns='space'/>, as XEP-0198 stream management and XEP-0352
// client state indication are offered.
type StreamFeatures interface {
	StreamFeatures() []xml.Name
}

// StreamElementHandler is the capability of a module that handles top-level
// elements of a bound stream that are not stanzas ("nonzas") in a namespace
// of its own: XEP-0352's <active/> and <inactive/>. The router hands an
// element whose name StreamElements declares to HandleStreamElement before
// any stanza check; an element of a name no module declares, in whatever
// namespace, still closes the stream with unsupported-stanza-type. Names in
// jabber:client or XEP-0198's namespace (which the stream handles itself)
// cannot be declared, nor a name another module declared. The handler runs
// on the session's stream and must not wait on other clients; a stream
// error it returns (wire.StreamError) closes the stream, any other error
// closes it with internal-server-error.
type StreamElementHandler interface {
	StreamElements() []xml.Name
	HandleStreamElement(ctx context.Context, s Session, el *wire.Element) error
}

// AccountHook is the capability of a module told of accounts created and
// deleted while the server runs (by an administrator's command, by `adhocd
// user` through the control socket, by the bootstrap). What a module
// stores per account belongs under the account in storage, which removes
// it with the account even when no server runs; the hook is for what the
// module holds elsewhere, or in memory.
type AccountHook interface {
	AccountCreated(ctx context.Context, account jid.JID)
	AccountDeleted(ctx context.Context, account jid.JID)
}

// ErrDrop is what InterceptIn returns to drop a stanza silently: the router
// neither handles it nor answers it (XEP-0191: presence from a blocked JID,
// which must get no error).
var ErrDrop = errors.New("modules: stanza dropped")

// StanzaInterceptor is the capability of a module that may stop stanzas on
// their way through the router (XEP-0191 blocking, say).
type StanzaInterceptor interface {
	// InterceptIn sees each stanza a local session sends, its from checked
	// and its to parsed (the zero JID when it had none), before the router
	// handles it. It returns nil to let it pass, ErrDrop to drop it without
	// an answer, or the error the sender is answered with instead: one with
	// a TokenReader method (stanza.Error, or a type of the module's own
	// that adds an application-specific condition) renders the <error/>.
	InterceptIn(ctx context.Context, from Session, el *wire.Element, to jid.JID) error
	// InterceptOut sees each stanza the router is about to queue for a
	// local session, and returns false to drop it for that session. It
	// runs in the sender's goroutine and must not block.
	InterceptOut(to Session, el *wire.Element) bool
}

// DomainHandler is the capability of a module that serves a domain of its
// own beside the server's: a service on a subdomain, as a XEP-0045 group
// chat service on conference.DOMAIN or a XEP-0363 upload service. The
// router hands it every stanza a local session addresses to one of its
// domains (the domain itself or any JID at it): IQs and messages as they
// come, and available and unavailable presence, directed presence being
// tracked as for any JID (a session that ends sends its unavailable
// presence to the services it sent presence to). A JID at the domain in a
// roster is a contact as any other: the service gets the presence of an
// account subscribed to it, a probe from the account's bare JID when one
// of its sessions comes online with a subscription to it, and the
// subscription stanzas the account sends it once the account's roster has
// them (RFC 6121 §3). The module answers and sends through Host.Send, from
// JIDs of its domains to local JIDs; Host.Send takes the subscription
// stanzas and probes from such a JID as a contact's server's, through the
// local account's roster.
type DomainHandler interface {
	// Domains lists the domains served, none the server's own; each is
	// served by one module.
	Domains() []string
	// HandleStanza handles el (iq, message or presence), which the local
	// session from sent to to, a JID of one of the module's domains; the
	// from attribute is stamped. An error that renders as an <error/>
	// (a stanza.Error, or an error with a TokenReader method) is the
	// answer to the sender; other errors are logged and answered with
	// internal-server-error.
	HandleStanza(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error
}
