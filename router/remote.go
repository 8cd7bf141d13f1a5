package router

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// Federation's seam (RFC 6120 §2.5, §8; docs/design-federation.md §2).
// The router does not speak server-to-server itself: Options.Remote (the
// s2s pool) takes every stanza for a domain that is neither the server's
// nor a service's, and the s2s streams hand what they read to Receive.
// Outbound, the remote domain is one more service: every site that asks
// service() (directed presence, probes, subscriptions, the broadcast's
// probes) reaches it through the code the external components already
// use. Inbound, a remote sender is a transient session (session.peer):
// what the router sends it, answers and errors alike, goes back to
// Remote, so moduleIQ, bounce and the presence code work unchanged.

// Remote is federation: it takes the stanzas for other domains. It only
// queues them (it never waits on a remote server); what fails later comes
// back through Router.Bounce.
type Remote interface {
	// HandleStanza sends el, from the local or served JID from, to the
	// remote JID to. An error that renders as an <error/> (a
	// stanza.Error) is the answer to the sender.
	HandleStanza(ctx context.Context, from jid.JID, el *wire.Element, to jid.JID) error
}

// served returns the module serving to's domain, or nil.
func (s *Router) served(to jid.JID) modules.DomainHandler {
	if len(s.hooks.services) == 0 {
		return nil
	}
	return s.hooks.services[to.Domainpart()]
}

// remoteDomain reports whether j is at a domain federation reaches: not
// the server's, not a service's, and federation on.
func (s *Router) remoteDomain(j jid.JID) bool {
	return s.remote != nil && j.Domainpart() != "" && !s.isLocal(j) && s.served(j) == nil
}

// peer returns the transient session of a remote sender: not bound, in no
// table, what is sent to it goes to Remote.
func (s *Router) peer(from jid.JID) *session {
	return &session{r: s, addr: from, addrName: from.String(), log: s.log, peer: true}
}

// toRemote hands what the router sends a peer session to Remote. Errors
// and results are never answered (RFC 6120 §8.3.1), so a refusal here is
// only logged.
func (s *Router) toRemote(dst *session, el *wire.Element) {
	from := s.domain
	if f := el.Attr("from"); f != "" {
		j, err := jid.Parse(f)
		if err != nil {
			s.log.Warn("s2s: reply with a bad from", "from", f, "err", err)
			return
		}
		from = j
	}
	if err := s.remote.HandleStanza(context.Background(), from, el, dst.addr); err != nil {
		s.log.Debug("s2s: reply not sent", "to", dst.addrName, "kind", el.Start.Name.Local, "err", err)
	}
}

// sender returns the session to answer from with: a bound session of the
// server (on any replica), a peer session for a remote JID when
// federating, or nil.
func (s *Router) sender(from jid.JID) *session {
	switch {
	case s.isLocal(from):
		if from.Localpart() == "" || from.Resourcepart() == "" {
			return nil
		}
		return s.sessions.resource(from.Localpart(), from.Resourcepart())
	case s.remoteDomain(from):
		return s.peer(from)
	}
	return nil
}

// Bounce answers el, a stanza a local session or service sent to a remote
// JID that federation could not deliver, with se (RFC 6120 §8.3). Errors are
// never answered.
func (s *Router) Bounce(el *wire.Element, se stanza.Error) {
	s.sendError(el.Attr("from"), el, se)
}

// Receive routes a stanza that came from another domain over federation.
// The s2s stream checked it already: from is at a domain the stream
// authenticated, to at the server's domain or a service's (no relay), and
// el is in jabber:client with both addresses stamped. What the remote
// sender cannot be given is answered with a stanza error sent back through
// Remote; the returned error is an internal failure, logged by the caller.
func (s *Router) Receive(ctx context.Context, from, to jid.JID, el *wire.Element) error {
	if s.remote == nil {
		return errors.New("router: receive: federation is off")
	}
	name := el.Start.Name.Local
	s.stanzasIn.Add(1)
	s.metrics.StanzaIn(name)
	p := s.peer(from)
	if !s.access.Allowed(from) {
		return s.bounce(p, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.Forbidden,
			Text: map[string]string{"en": "the server's access lists do not allow " + from.Domainpart()}})
	}
	if h := s.served(to); h != nil {
		// A service (a group chat room, an external component) answers
		// remote entities as it answers local ones, through Host.Send.
		if err := h.HandleStanza(ctx, from, el, to); err != nil {
			return s.bounceErr(p, el, err)
		}
		return nil
	}
	var err error
	switch name {
	case "iq":
		err = s.receiveIQ(ctx, p, el, to)
	case "message":
		if to.Localpart() == "" {
			// The server JID: nothing serves messages to it.
			if t := el.Attr("type"); t == "error" || t == "headline" || t == "groupchat" {
				return nil
			}
			return s.bounce(p, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
		}
		err = s.deliverMessage(ctx, el, to)
	case "presence":
		var handled bool
		if handled, err = s.servicePresence(ctx, el, to); !handled {
			switch el.Attr("type") {
			case "", "unavailable", "error":
				s.deliverPresence(ctx, el, to)
			}
		}
	default:
		return nil
	}
	if err == nil {
		return nil
	}
	return s.bounceErr(p, el, err)
}

// bounceErr answers el with err when it renders as an <error/>; any other
// error is the server's own failure, answered with internal-server-error
// (or resource-constraint when the disk is full) and returned.
func (s *Router) bounceErr(c *session, el *wire.Element, err error) error {
	var rendered interface{ TokenReader() xml.TokenReader }
	if errors.As(err, &rendered) {
		return s.bounceWith(c, el, rendered.TokenReader())
	}
	if berr := s.bounce(c, el, failure(err)); berr != nil {
		return berr
	}
	return err
}

// receiveIQ routes an IQ from a remote entity: requests to the server JID
// and to local bare JIDs reach the modules' handlers that open the route
// to other domains (modules.RemoteIQHandler), any other is
// service-unavailable; IQs to a full JID reach that resource.
func (s *Router) receiveIQ(ctx context.Context, p *session, el *wire.Element, to jid.JID) error {
	typ := stanza.IQType(el.Attr("type"))
	_, n := el.Payload()
	switch typ {
	case stanza.GetIQ, stanza.SetIQ:
		if n != 1 {
			return s.bounce(p, el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: map[string]string{"en": "an IQ get or set carries exactly one child element"}})
		}
	case stanza.ResultIQ, stanza.ErrorIQ:
	default:
		return s.bounce(p, el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "the IQ type must be get, set, result or error"}})
	}
	request := typ == stanza.GetIQ || typ == stanza.SetIQ
	switch {
	case to.Resourcepart() != "":
		if dst := s.sessions.resource(to.Localpart(), to.Resourcepart()); dst != nil {
			s.deliver(dst, el)
			return nil
		}
		return s.unhandled(p, el, request)
	case !request:
		// Answers to the server's own requests come from local clients
		// only (request.go): nothing waits for these.
		return nil
	case to.Localpart() == "":
		if h := s.hooks.iqs[routeOf(el, typ)]; openToRemote(h, routeOf(el, typ)) {
			return s.moduleIQ(ctx, p, el, typ, h, s.domain)
		}
		return s.unhandled(p, el, true)
	}
	if h := s.hooks.bareIQs[routeOf(el, typ)]; !openToRemote(h, routeOf(el, typ)) {
		return s.unhandled(p, el, true)
	}
	return s.bareIQ(ctx, p, el, typ, to)
}

// openToRemote reports whether h declares r open to other domains.
func openToRemote(h iqHandler, r modules.Route) bool {
	rh, ok := h.(modules.RemoteIQHandler)
	return ok && slices.Contains(rh.RemoteRoutes(), r)
}
