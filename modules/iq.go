package modules

import (
	"context"
	"encoding/xml"
	"io"

	"mellium.im/xmpp/disco/info"
	"mellium.im/xmpp/stanza"
)

// The capabilities below are optional: a Module has one when it implements
// the interface, and the server finds it by type assertion once the module
// has started. A module declares what it serves itself, so what is
// advertised cannot drift from what is handled.

// IQ is an IQ request addressed to the server JID, as the router read it:
// parsed once, its payload shared with the router, never copied.
type IQ struct {
	// IQ has the id, type and language; From is the requester's full JID
	// (checked by the router) and To the server JID, or the requester's
	// bare JID for an AccountIQHandler.
	stanza.IQ
	// Payload is the start tag of the IQ's one child element.
	Payload xml.StartElement
	// Inner is the child's content. The tokens belong to the router: a
	// handler reads them and keeps none of them past its return.
	Inner []xml.Token
	// Session is the requester's session.
	Session Session
}

// Route names the IQ requests a handler answers: its type (get or set) and
// its payload's name.
type Route struct {
	Type    stanza.IQType
	Payload xml.Name
}

// IQHandler is the capability of a module that answers IQ requests to the
// server JID.
type IQHandler interface {
	// Routes lists the requests the module answers; two modules may not
	// claim the same route.
	Routes() []Route
	// HandleIQ answers one request. ctx ends when the client's stream does.
	// It returns the payload of the result (nil: an empty result) or an
	// error: one with a TokenReader method (stanza.Error, adhoc.Error)
	// renders the <error/> sent back, any other is sent as
	// internal-server-error and logged.
	HandleIQ(ctx context.Context, iq IQ) (xml.TokenReader, error)
}

// RemoteIQHandler is the capability of a module whose IQ routes (its
// Routes to the server JID, its BareJIDRoutes to local bare JIDs) entities
// of other domains may use over federation (RFC 6120 §8, XEP-0030 disco of
// a remote server, XEP-0050 commands run from another server). The router
// answers a remote entity's request on a route no module lists here with
// service-unavailable, so that a handler written for local users (one
// that changes the requester's account, say) is never reached from
// another domain by accident. IQ.Session is then a transient session of
// the remote requester: it keeps no values past the request, and what is
// delivered to it goes back over federation.
type RemoteIQHandler interface {
	RemoteRoutes() []Route
}

// TokenSlice is what a handler's answer may implement when it holds its
// tokens in a slice built for that answer alone: the router then takes them
// as they are instead of copying each one.
type TokenSlice interface {
	Tokens() []xml.Token
}

// Tokens returns an answer of toks, built for that answer alone, which the
// router takes as it is (TokenSlice).
func Tokens(toks []xml.Token) xml.TokenReader { return &tokenSlice{toks: toks} }

type tokenSlice struct {
	toks []xml.Token
	i    int
}

func (t *tokenSlice) Tokens() []xml.Token { return t.toks }

func (t *tokenSlice) Token() (xml.Token, error) {
	if t.i >= len(t.toks) {
		return nil, io.EOF
	}
	t.i++
	return t.toks[t.i-1], nil
}

// Features is the capability of a module that serves disco#info features
// of the server JID (XEP-0030): the server advertises them while the
// module runs.
type Features interface {
	Features() []string
}

// AccountFeatures is the capability of a module that serves disco#info
// features of every local account's bare JID (XEP-0030 §3.1), PEP's
// (XEP-0163 §6.1) among them.
type AccountFeatures interface {
	AccountFeatures() []string
}

// Identities is the capability of a module that declares disco#info
// identities of the server JID (XEP-0030 §3.1).
type Identities interface {
	Identities() []info.Identity
}
