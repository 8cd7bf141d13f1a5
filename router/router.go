package router

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"syscall"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/c2s"
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// route handles one stanza from a bound session: it checks and stamps the
// sender (RFC 6120 §8.1.2.1) and delivers it by kind and addressee.
func (s *Router) route(ctx context.Context, c *session, el *wire.Element) error {
	name := el.Start.Name
	if !wire.IsStanza(name) {
		if h := s.hooks.streamElements[name]; h != nil {
			return s.streamElement(ctx, c, el, h)
		}
		if name.Space != stanza.NSClient {
			return wire.StreamError(stream.UnsupportedStanzaType, fmt.Sprintf("unsupported element {%s}%s", name.Space, name.Local))
		}
		return wire.StreamError(stream.UnsupportedStanzaType, "unsupported element <"+name.Local+"/>")
	}
	if f := el.Attr("from"); f != "" {
		fj, err := jid.Parse(f)
		if err != nil || !(fj.Equal(c.addr) || (fj.Resourcepart() == "" && fj.Equal(c.addr.Bare()))) {
			return wire.StreamError(stream.InvalidFrom, "the from address is not this session's")
		}
	}
	if name.Local == "iq" && el.Attr("id") == "" {
		return wire.StreamError(stream.BadFormat, "an IQ needs an id")
	}
	el.SetAttr("from", c.addrName)
	if t, ok := s.metrics.(c2s.StanzaTracer); ok {
		var end func()
		ctx, end = t.TraceStanza(ctx, name.Local)
		defer end()
	}
	s.stanzasIn.Add(1)
	s.metrics.StanzaIn(name.Local)

	var to jid.JID
	switch t := el.Attr("to"); {
	case t == "":
	case t == s.domainName:
		// The server JID, already in its normal form: nothing to parse.
		to = s.domain
	default:
		j, err := jid.Parse(t)
		if err != nil {
			return s.bounce(c, el, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
		}
		to = j
		el.SetAttr("to", j.String())
	}
	if to.String() != "" && !to.Equal(s.domain) && !s.access.Allowed(to) {
		return s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.Forbidden,
			Text: map[string]string{"en": "the server's access lists do not allow contacting " + to.String()}})
	}
	if len(s.hooks.interceptors) > 0 {
		if err := s.interceptIn(ctx, c, el, to); err != nil {
			if errors.Is(err, modules.ErrDrop) {
				return nil
			}
			var rendered interface{ TokenReader() xml.TokenReader }
			if errors.As(err, &rendered) {
				return s.bounceWith(c, el, rendered.TokenReader())
			}
			return s.keepStream(c, el, err)
		}
	}
	if name.Local != "presence" {
		// Messages to remote JIDs go through routeMessage, for the
		// modules' hooks (carbons, the archive).
		if h := s.served(to); h != nil {
			s.toService(ctx, h, c.addr, el, to)
			return nil
		}
	}
	var err error
	switch name.Local {
	case "iq":
		err = s.routeIQ(ctx, c, el, to)
	case "message":
		err = s.routeMessage(ctx, c, el, to)
	default:
		err = s.handlePresence(ctx, c, s.rewritePresence(ctx, c, el), to)
	}
	return s.keepStream(c, el, err)
}

// streamElement hands a top-level non-stanza element to the module that
// declared its name (modules.StreamElementHandler): a stream error it
// returns closes the stream as it is, any other error with
// internal-server-error.
func (s *Router) streamElement(ctx context.Context, c *session, el *wire.Element, h modules.StreamElementHandler) error {
	err := h.HandleStreamElement(ctx, c, el)
	var se stream.Error
	if err == nil || errors.As(err, &se) || errors.Is(err, c2s.ErrClosed) {
		return err
	}
	s.log.Error("stream element failed", "element", "{"+el.Start.Name.Space+"}"+el.Start.Name.Local, "jid", c.addrName, "err", err)
	return wire.StreamError(stream.InternalServerError, "the server could not handle <"+el.Start.Name.Local+"/>")
}

// keepStream turns a failure of the server itself (the store refusing a
// write, say) into a stanza error for that stanza, so that one failed write
// never ends the client's stream; stream errors and closing pass through.
func (s *Router) keepStream(c *session, el *wire.Element, err error) error {
	if err == nil {
		// Before se, which escapes and would be allocated for every stanza.
		return nil
	}
	var se stream.Error
	if errors.As(err, &se) || errors.Is(err, c2s.ErrClosed) {
		return err
	}
	s.log.Error("stanza failed", "kind", el.Start.Name.Local, "jid", c.addr.String(), "err", err)
	return s.bounce(c, el, failure(err))
}

// failure is the stanza error for an internal failure: resource-constraint
// when the disk is full, internal-server-error otherwise.
func failure(err error) stanza.Error {
	if errors.Is(err, syscall.ENOSPC) {
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "the server's storage is full"}}
	}
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}

// isLocal reports whether j is on this server's domain.
func (s *Router) isLocal(j jid.JID) bool { return j.Domainpart() == s.domain.Domainpart() }

// routeIQ checks an IQ's shape (RFC 6120 §8.2.3) and sends it to the
// account's handlers, the server's, or the addressed resource.
func (s *Router) routeIQ(ctx context.Context, c *session, el *wire.Element, to jid.JID) error {
	typ := stanza.IQType(el.Attr("type"))
	_, n := el.Payload()
	switch typ {
	case stanza.GetIQ, stanza.SetIQ:
		if n != 1 {
			return s.bounce(c, el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
				Text: map[string]string{"en": "an IQ get or set carries exactly one child element"}})
		}
	case stanza.ResultIQ, stanza.ErrorIQ:
		if typ == stanza.ResultIQ && n > 1 {
			return nil
		}
	default:
		return s.bounce(c, el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "the IQ type must be get, set, result or error"}})
	}
	request := typ == stanza.GetIQ || typ == stanza.SetIQ
	switch {
	case to.String() == "" || to.Equal(c.addr.Bare()):
		if handled, err := s.accountIQ(ctx, c, el); handled || err != nil {
			return err
		}
		if request {
			if h := s.hooks.accountIQs[routeOf(el, typ)]; h != nil {
				return s.moduleIQ(ctx, c, el, typ, h, c.addr.Bare())
			}
		}
		if to.String() != "" {
			return s.bareIQ(ctx, c, el, typ, to)
		}
		return s.serverIQ(ctx, c, el, typ)
	case to.Equal(s.domain):
		return s.serverIQ(ctx, c, el, typ)
	case s.remoteDomain(to):
		s.toService(ctx, s.remote, c.addr, el, to)
		return nil
	case !s.isLocal(to):
		if request {
			return s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound})
		}
		return nil
	case to.Resourcepart() != "":
		if dst := s.sessions.resource(to.Localpart(), to.Resourcepart()); dst != nil {
			s.deliver(dst, el)
			return nil
		}
		return s.unhandled(c, el, request)
	default:
		return s.bareIQ(ctx, c, el, typ, to)
	}
}

// bareIQ hands an IQ request to a local bare JID to the module that
// declared its route (modules.BareJIDIQHandler), once the account is known
// to exist; anything else is service-unavailable (RFC 6121 §8.5.1).
func (s *Router) bareIQ(ctx context.Context, c *session, el *wire.Element, typ stanza.IQType, to jid.JID) error {
	if typ != stanza.GetIQ && typ != stanza.SetIQ {
		return nil
	}
	h := s.hooks.bareIQs[routeOf(el, typ)]
	if h == nil || to.Localpart() == "" {
		return s.unhandled(c, el, true)
	}
	exists, err := s.accountExists(ctx, to.Localpart())
	if err != nil {
		return s.bounce(c, el, stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError})
	}
	if !exists {
		return s.unhandled(c, el, true)
	}
	return s.moduleIQ(ctx, c, el, typ, h, to.Bare())
}

// unhandled answers an IQ request nobody serves with service-unavailable
// (RFC 6120 §8.4); results and errors are never answered.
func (s *Router) unhandled(c *session, el *wire.Element, request bool) error {
	if !request {
		return nil
	}
	return s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable})
}

// serverIQ hands an IQ request to the module that declared its route
// (modules.IQHandler), with the stream's context and the payload as read,
// and sends the module's answer back. A request no module answers gets
// service-unavailable.
func (s *Router) serverIQ(ctx context.Context, c *session, el *wire.Element, typ stanza.IQType) error {
	if typ == stanza.ResultIQ || typ == stanza.ErrorIQ {
		s.iqResponse(c, el)
		return nil
	}
	h := s.hooks.iqs[routeOf(el, typ)]
	if h == nil {
		return s.unhandled(c, el, true)
	}
	return s.moduleIQ(ctx, c, el, typ, h, s.domain)
}

// routeOf is the route of an IQ request: its type and its payload's name.
func routeOf(el *wire.Element, typ stanza.IQType) modules.Route {
	name, _ := el.Payload()
	return modules.Route{Type: typ, Payload: name}
}

// moduleIQ calls the module's handler of an IQ request addressed to to and
// sends its answer back; a returned error becomes the <error/> reply here,
// at this one boundary.
func (s *Router) moduleIQ(ctx context.Context, c *session, el *wire.Element, typ stanza.IQType, h iqHandler, to jid.JID) error {
	name, _ := el.Payload()
	// The addresses are known already: from is the session's (the router
	// checked and set it), to the server's or the account's.
	iq := stanza.IQ{XMLName: el.Start.Name, ID: el.Attr("id"), Type: typ, From: c.addr, To: to, Lang: langOf(el.Start)}
	toks := el.Child(name)
	resp, err := h.HandleIQ(ctx, modules.IQ{IQ: iq, Payload: toks[0].(xml.StartElement), Inner: toks[1 : len(toks)-1], Session: c})
	if err != nil {
		var rendered interface{ TokenReader() xml.TokenReader }
		if !errors.As(err, &rendered) {
			s.log.Error("IQ handler failed", "payload", payloadName(el), "err", err)
			rendered = stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError}
		}
		return s.bounceWith(c, el, rendered.TokenReader())
	}
	// The attributes SetAttr would give a new element, in one allocation.
	attrs := make([]xml.Attr, 0, 4)
	if id := el.Attr("id"); id != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "id"}, Value: id})
	}
	attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: string(stanza.ResultIQ)})
	if to := el.Attr("to"); to != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "from"}, Value: to})
	}
	if c.addrName != "" {
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "to"}, Value: c.addrName})
	}
	reply := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "iq"}, Attr: attrs}}
	if ts, ok := resp.(modules.TokenSlice); ok {
		reply.Inner = ts.Tokens()
	} else if resp != nil {
		if reply.Inner, err = collect(resp); err != nil {
			s.log.Error("IQ handler's answer unreadable", "payload", payloadName(el), "err", err)
			return s.bounce(c, el, stanza.Error{Type: stanza.Cancel, Condition: stanza.InternalServerError})
		}
	}
	s.deliverOwn(c, reply)
	return nil
}

// langOf reads a stanza's xml:lang.
func langOf(start xml.StartElement) string {
	for _, a := range start.Attr {
		if a.Name.Local == "lang" && a.Name.Space == wire.NSXML {
			return a.Value
		}
	}
	return ""
}

func payloadName(el *wire.Element) string {
	n, _ := el.Payload()
	return "{" + n.Space + "}" + n.Local
}

// routeMessage delivers a message by RFC 6121 §8.5.
func (s *Router) routeMessage(ctx context.Context, c *session, el *wire.Element, to jid.JID) error {
	if to.String() == "" {
		to = c.addr.Bare()
		el.SetAttr("to", to.String())
	}
	typ := el.Attr("type")
	switch typ {
	case "", "normal", "chat", "groupchat", "headline", "error":
	default:
		return s.bounce(c, el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "unknown message type"}})
	}
	s.messageOutbound(ctx, c, el, to)
	if err := s.deliverMessage(ctx, el, to); err != nil {
		var se stanza.Error
		if errors.As(err, &se) {
			return s.bounce(c, el, se)
		}
		return err
	}
	s.messageSent(ctx, c, el, to)
	return nil
}

// deliverMessage delivers a message to a local or remote JID; a stanza.Error
// says why it could not be.
func (s *Router) deliverMessage(ctx context.Context, el *wire.Element, to jid.JID) error {
	typ := el.Attr("type")
	if s.remoteDomain(to) {
		from, err := jid.Parse(el.Attr("from"))
		if err != nil {
			return fmt.Errorf("router: message with a bad from %q: %w", el.Attr("from"), err)
		}
		return s.remote.HandleStanza(ctx, from, el, to)
	}
	if !s.isLocal(to) {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound}
	}
	if to.Localpart() == "" {
		// Messages to the server JID: nothing serves them.
		if typ == "error" || typ == "headline" {
			return nil
		}
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	user := to.Localpart()
	if res := to.Resourcepart(); res != "" {
		if dst := s.sessions.resource(user, res); dst != nil {
			el = s.messageInbound(ctx, el, to, user)
			s.deliver(dst, el)
			s.messageReceived(ctx, el, to, user, dst)
			return nil
		}
	}
	// One look at the account's sessions (with a cluster, one read of
	// the directory) serves the checks below.
	sessions := s.sessions.of(user)
	exists := len(sessions) > 0
	if !exists {
		var err error
		if exists, err = s.accountStored(ctx, user); err != nil {
			return err
		}
	}
	if !exists {
		if typ == "error" || typ == "headline" {
			return nil
		}
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	el = s.messageInbound(ctx, el, to, user)
	switch typ {
	case "error":
		return nil
	case "groupchat":
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	case "headline":
		for _, dst := range availableIn(sessions, false, nil) {
			s.deliver(dst, el)
		}
		return nil
	}
	dsts := availableIn(sessions, true, nil)
	if len(dsts) == 0 {
		if err := s.keepOffline(ctx, el, to, user); err != nil {
			return err
		}
		s.messageReceived(ctx, el, to, user)
		return nil
	}
	for _, dst := range dsts {
		s.deliver(dst, el)
	}
	s.messageReceived(ctx, el, to, user, dsts...)
	return nil
}

// available returns the sessions of an account that sent available
// presence with a non-negative priority, but those gone reports (nil: none
// is left out); with highest, only those at the highest priority.
func (s *Router) available(user string, highest bool, gone func(*session) bool) []*session {
	return availableIn(s.sessions.of(user), highest, gone)
}

// availableIn is available among sessions, an account's (RFC 6121
// §8.5.2.1.1: with highest, those sharing the highest priority).
func availableIn(sessions []*session, highest bool, gone func(*session) bool) []*session {
	var out []*session
	best := -1
	for _, dst := range sessions {
		if gone != nil && gone(dst) {
			continue
		}
		dst.pmu.Lock()
		avail, prio := dst.available, dst.priority
		dst.pmu.Unlock()
		if !avail || prio < 0 {
			continue
		}
		switch {
		case !highest || prio == best:
			out = append(out, dst)
		case prio > best:
			best = prio
			out = append(out[:0], dst)
		}
	}
	return out
}

func (s *Router) accountExists(ctx context.Context, user string) (bool, error) {
	if len(s.sessions.of(user)) > 0 {
		return true, nil
	}
	return s.accountStored(ctx, user)
}

// accountStored reports whether the store has the account.
func (s *Router) accountStored(ctx context.Context, user string) (bool, error) {
	_, err := s.store.Account(ctx, user)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	}
	return false, err
}

// deliver queues a stanza for one session (see outbound.go); the sender
// never waits on the recipient's socket. A stanza the session can no longer
// take is answered as undeliverable.
func (s *Router) deliver(dst *session, el *wire.Element) { s.send(dst, el, false) }

// deliverOwn queues a reply to the stanza the session's own reader is
// handling; with nothing else queued the reader writes it itself.
func (s *Router) deliverOwn(c *session, el *wire.Element) { s.send(c, el, true) }

func (s *Router) send(dst *session, el *wire.Element, own bool) {
	if dst.peer {
		s.toRemote(dst, el)
		return
	}
	if dst.remote != nil {
		// Its replica applies the interceptors, with what it keeps for
		// the session.
		if !s.forward(dst, el) {
			stream := dst.remote.stream
			s.bounceUndeliveredTo(dst.addr, func(c *session) bool { return c.remote != nil && c.remote.stream == stream }, el)
		}
		return
	}
	if len(s.hooks.interceptors) > 0 && !s.interceptOut(dst, el) {
		return
	}
	deliver := dst.conn.Deliver
	if own {
		deliver = dst.conn.Reply
	}
	switch err := deliver(el); {
	case errors.Is(err, c2s.ErrUndeliverable):
		s.bounceUndeliveredTo(dst.addr, func(c *session) bool { return c.conn == dst.conn }, el)
	case err != nil:
		s.log.Error("stanza not encoded", "kind", el.Start.Name.Local, "to", dst.addr.String(), "err", err)
	}
}

// bounce answers a stanza with an error of the same kind (RFC 6120 §8.3),
// addressed back to the sender. Errors are never answered with errors.
func (s *Router) bounce(c *session, el *wire.Element, se stanza.Error) error {
	return s.bounceWith(c, el, se.TokenReader())
}

// bounceWith is bounce with the <error/> element as tokens (one with a
// condition of the feature's own namespace beside the stanza condition,
// XEP-0050's say).
func (s *Router) bounceWith(c *session, el *wire.Element, errEl xml.TokenReader) error {
	if el.Attr("type") == "error" || el.Attr("type") == "result" {
		return nil
	}
	reply, err := modules.ErrorReply(el, errEl)
	if err != nil {
		return err
	}
	reply.SetAttr("to", c.addrName)
	s.deliverOwn(c, reply)
	return nil
}

// collect reads a token reader into copied tokens.
func collect(r xml.TokenReader) ([]xml.Token, error) {
	buf := &wire.TokenBuffer{}
	if _, err := xmlstream.Copy(buf, r); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return buf.Toks, nil
}
