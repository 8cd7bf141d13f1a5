package modules

import (
	"encoding/xml"
	"fmt"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// ErrorReply is the error answering el (RFC 6120 §8.3), from its addressee
// to its sender, with the same id: an IQ's carries the <error/> errEl reads
// only, a message's or presence's its payload back too. The router bounces
// with it, and so do the modules that answer for a stream of their own
// (XEP-0114 components). Whether el may be answered at all (an error or a
// result may not) is the caller's to ask.
func ErrorReply(el *wire.Element, errEl xml.TokenReader) (*wire.Element, error) {
	reply := &wire.Element{Start: xml.StartElement{Name: el.Start.Name}}
	if id := el.Attr("id"); id != "" {
		reply.SetAttr("id", id)
	}
	reply.SetAttr("type", "error")
	if to := el.Attr("to"); to != "" {
		reply.SetAttr("from", to)
	}
	if from := el.Attr("from"); from != "" {
		reply.SetAttr("to", from)
	}
	if el.Start.Name.Local != "iq" {
		reply.Inner = append(reply.Inner, el.Inner...)
	}
	buf := &wire.TokenBuffer{}
	if _, err := xmlstream.Copy(buf, errEl); err != nil {
		return nil, fmt.Errorf("modules: error reply: %w", err)
	}
	reply.Inner = append(reply.Inner, buf.Toks...)
	return reply, nil
}

// StanzaError is a stanza error of typ and cond with an English text, none
// when text is empty.
func StanzaError(typ stanza.ErrorType, cond stanza.Condition, text string) stanza.Error {
	se := stanza.Error{Type: typ, Condition: cond}
	if text != "" {
		se.Text = map[string]string{"en": text}
	}
	return se
}
