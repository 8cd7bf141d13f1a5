package server

import (
	"context"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/router"
	"github.com/adhocd/adhocd/wire"
)

// WithRemote routes the stanzas for other domains to r instead of the
// server's own federation (s2s): for programs that embed adhocd behind a
// gateway of their own, and for the router's federation tests. What r
// receives from other domains it hands to Receive; what it could not
// deliver, to Bounce.
func WithRemote(r router.Remote) Option { return func(s *Server) { s.remote = r } }

// Receive routes a stanza from another domain (router.Router.Receive):
// from at the authenticated remote domain, to at the server's domain or a
// service's, el in jabber:client with both addresses set.
func (s *Server) Receive(ctx context.Context, from, to jid.JID, el *wire.Element) error {
	return s.router.Receive(ctx, from, to, el)
}

// Bounce answers el, a stanza sent to another domain that could not be
// delivered, with se (router.Router.Bounce).
func (s *Server) Bounce(el *wire.Element, se stanza.Error) { s.router.Bounce(el, se) }
