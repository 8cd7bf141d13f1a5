package component

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/wire"
)

// fromComponent checks and routes one element the component c sent. A
// stream error it returns ends the stream.
func (m *Module) fromComponent(ctx context.Context, c *conn, el *wire.Element) error {
	wire.SwapNS(el, NS, stanza.NSClient)
	name := el.Start.Name
	if !wire.IsStanza(name) {
		return wire.StreamError(stream.UnsupportedStanzaType, fmt.Sprintf("unexpected element {%s}%s", name.Space, name.Local))
	}
	m.stanzas.Add(ctx, 1, dirIn)
	from := c.jid
	if f := el.Attr("from"); f != "" {
		j, err := jid.Parse(f)
		if err != nil || j.Domainpart() != c.domain {
			// XEP-0114 §3: the from is at the component's domain.
			return wire.StreamError(stream.InvalidFrom, fmt.Sprintf("%q is not an address at %s", f, c.domain))
		}
		from = j
	}
	el.SetAttr("from", from.String())
	if name.Local == "iq" && el.Attr("id") == "" {
		return wire.StreamError(stream.BadFormat, "an IQ needs an id")
	}
	t := el.Attr("to")
	if t == "" {
		c.bounce(el, stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest,
			Text: map[string]string{"en": "a component addresses every stanza (XEP-0114)"}})
		return nil
	}
	to, err := jid.Parse(t)
	if err != nil {
		c.bounce(el, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed})
		return nil
	}
	el.SetAttr("to", to.String())
	switch d := to.Domainpart(); {
	case d == m.server.Domainpart():
		m.toLocal(ctx, c, el)
	case m.secrets[d] != "":
		// The component's own domain, or another component's.
		if err := m.toComponent(ctx, d, el); err != nil {
			c.bounce(el, errorOf(err))
		}
	default:
		c.bounce(el, stanza.Error{Type: stanza.Cancel, Condition: stanza.RemoteServerNotFound,
			Text: map[string]string{"en": "this server reaches no other domain than its own and its components'"}})
	}
	return nil
}

// toLocal delivers el, from the component c, to a JID of the server's
// domain through the router, and answers c with what stopped it.
func (m *Module) toLocal(ctx context.Context, c *conn, el *wire.Element) {
	err := m.h.Send(ctx, readerOf(el))
	if err == nil {
		return
	}
	var se stanza.Error
	if !errors.As(err, &se) {
		c.log.Debug("component stanza not delivered", "kind", el.Start.Name.Local, "err", err)
	}
	c.bounce(el, errorOf(err))
}

// errorOf is the stanza error err is, or internal-server-error.
func errorOf(err error) stanza.Error {
	var se stanza.Error
	if errors.As(err, &se) {
		return se
	}
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError}
}

// bounce answers el, which the component c sent (in jabber:client by now:
// toClient), with se on c's stream; errors and results are never answered.
func (c *conn) bounce(el *wire.Element, se stanza.Error) {
	if typ := el.Attr("type"); typ == "error" || typ == "result" {
		return
	}
	reply, err := modules.ErrorReply(el, se.TokenReader())
	if err == nil {
		err = c.enqueue(reply)
	}
	if err != nil {
		c.log.Debug("component stanza error not sent", "err", err)
	}
}

// undelivered answers the stanzas that were queued for a component and
// never written, IQ requests and messages, with service-unavailable, as
// the router answers those of a client whose stream ended (RFC 6120
// §10.4.3); presence and errors are dropped.
func (m *Module) undelivered(qs []queued) {
	for _, q := range qs {
		el := q.el
		typ := el.Attr("type")
		switch {
		case el.Start.Name.Local == "iq" && (typ == "get" || typ == "set"):
		case el.Start.Name.Local == "message" && typ != "error":
		default:
			continue
		}
		to, err := jid.Parse(el.Attr("from"))
		if err != nil || to.Domainpart() != m.server.Domainpart() {
			// A component's own stanza (to itself or another one), or an
			// answer to it: nobody left to tell.
			continue
		}
		se := stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable,
			Text: map[string]string{"en": "the component's connection closed before this could be written to it"}}
		reply, err := modules.ErrorReply(el, se.TokenReader())
		if err == nil {
			err = m.h.Send(context.Background(), readerOf(reply))
		}
		if err != nil {
			m.log.Debug("undelivered stanza not answered", "err", err)
		}
	}
}

// readerOf reads el whole, start and end tags included.
func readerOf(el *wire.Element) xml.TokenReader {
	toks := make([]xml.Token, 0, len(el.Inner)+1)
	toks = append(append(toks, el.Start), el.Inner...)
	return &wire.SliceReader{Toks: toks, Last: el.Start.End()}
}
