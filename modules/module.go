// Package modules owns the module API, how features plug into adhocd: a
// Module is started with a Host, the narrow surface of the server every
// module may use, and stopped in reverse order at shutdown. What a module
// serves it declares through optional capabilities found by type assertion
// (in the manner of caddy's optional interfaces and jackal's processors):
//
//   - iq.go: IQHandler (IQ requests to the server JID, with the stream's
//     context and the payload parsed once), Features and Identities
//     (disco#info of the server JID);
//   - stanza.go: AccountIQHandler (IQs to the account's own JID),
//     BareJIDIQHandler (IQs to any local bare JID, on its account's behalf),
//     MessageHook (messages sent and received), OutboundMessageHook and
//     InboundMessageHook (each message before it is delivered, on its way
//     out of an account and into one), OfflineStore (XEP-0160),
//     OnlineHook and ReachableHook (presence), SubscriptionHook (presence
//     subscriptions approved), StanzaInterceptor (stanzas stopped on their
//     way in or out), StreamFeatures, AccountHook (accounts created and
//     deleted), and Session and Message, what those see of a session and
//     of a message.
//
// A module that needs more of the server than Host declares its own narrow
// interface and finds it on the Host by type assertion (modules/admin's
// Host). The constructor table defaults.Table (package modules/defaults)
// lists the modules adhocd runs; cmd/adhocd passes them to the server, and
// programs that embed adhocd pass them, their own, or both
// (server.WithModules).
//
// The XEP-0030 disco registry lives here too because every module publishes
// into it: features and identities of the server JID, and node handlers
// that answer disco#info and disco#items per requester (the XEP-0050
// command list shows a requester only the commands it may run, which
// mellium's disco handler, keyed on nodes alone, cannot do).
package modules

import (
	"context"
	"encoding/xml"
	"log/slog"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Module is one feature of the server.
type Module interface {
	// Name identifies the module in logs.
	Name() string
	// Start registers the module's handlers with the host. It must not block.
	Start(ctx context.Context, h Host) error
	// Stop releases what Start acquired.
	Stop(ctx context.Context) error
}

// Host is what every module may use of the server. A module that needs
// more declares the interface it needs (modules/admin's Host, say) and
// finds it on the Host by type assertion.
type Host interface {
	// Domain is the server JID.
	Domain() jid.JID
	// Config is the configuration the server was started with.
	Config() config.Config
	// Logger is the server's logger, scoped to the module by the caller.
	Logger() *slog.Logger
	// Store is the server's persistent store.
	Store() storage.Store
	// Disco is the service-discovery registry of the server JID.
	Disco() *Disco
	// Commands is the server's XEP-0050 provider; modules add commands to
	// the server JID with Commands().AddCommand(Domain(), …).
	Commands() *adhoc.Provider
	// Sessions lists the bound client sessions, in no particular order.
	Sessions() []SessionInfo
	// UserSessions returns the bound sessions of the local account user.
	UserSessions(user string) []Session
	// Send delivers a stanza from the server (or from a local JID) to its
	// recipients as the router would.
	Send(ctx context.Context, r xml.TokenReader) error
}

// SessionInfo describes one bound client session.
type SessionInfo struct {
	JID jid.JID
	// Remote is the client's network address.
	Remote string
	// Since is when the connection was accepted; LastActive when the client
	// last sent a stanza.
	Since, LastActive time.Time
	// Available is set once the client sent available presence.
	Available bool
	Priority  int
	// Stanzas is how many stanzas the session has sent.
	Stanzas uint64
	// Replica names the replica that holds the session when it is
	// another one of the cluster; empty for this one. Remote is then
	// "replica" and that name, Stanzas is unknown (zero), and LastActive
	// is what that replica answered when the list was made (to the
	// millisecond): zero, so that the session counts as idle, when it did
	// not answer within a second (logged) or the session is not among
	// the 50,000 most recently active it tells.
	Replica string
}

// Status is what the server counts about itself.
type Status struct {
	Started time.Time
	// Connections is the open client connections, authenticated or not;
	// Sessions the bound sessions among them.
	Connections, Sessions int
	// OnlineUsers is the accounts with at least one bound session.
	OnlineUsers int
	// StanzasIn and StanzasOut count stanzas since the start.
	StanzasIn, StanzasOut uint64
}

// Figure is one line of the server's status report: a variable name, a
// label for people and the value (the status command's form, `adhocd
// status`).
type Figure struct {
	Var, Label, Value string
}

// IQRequester is what the Host offers a module that asks local clients
// something, found by type assertion: Request sends an IQ get or set
// carrying payload from the server JID to a local full JID and returns the
// answer, a result or an error IQ, or ctx's error (XEP-0115: the features
// behind a caps hash).
type IQRequester interface {
	Request(ctx context.Context, to jid.JID, typ stanza.IQType, payload xml.TokenReader) (*wire.Element, error)
}

// ModuleFinder is what the Host offers a module that builds on another,
// found by type assertion: Module returns the module named name if it
// started before the one that asks (modules start in order), which then
// type-asserts it to what it uses (modules/bookmarks finds "pep" so).
type ModuleFinder interface {
	Module(name string) (Module, bool)
}

// Constructor makes a module.
type Constructor func() Module
