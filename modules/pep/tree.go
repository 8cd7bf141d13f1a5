package pep

import (
	"encoding/xml"
	"strings"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// elem is one element of a request, read from its tokens once: its start
// tag, its whole token slice (start to end, shared with the router, never
// changed) and its child elements.
type elem struct {
	start xml.StartElement
	toks  []xml.Token
	kids  []*elem
}

// elements returns the top-level elements of toks, each with its children;
// character data between them is skipped.
func elements(toks []xml.Token) []*elem {
	var out []*elem
	var stack []*elem
	var starts []int
	for i, t := range toks {
		switch t := t.(type) {
		case xml.StartElement:
			e := &elem{start: t}
			if len(stack) == 0 {
				out = append(out, e)
			} else {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, e)
			}
			stack = append(stack, e)
			starts = append(starts, i)
		case xml.EndElement:
			if len(stack) == 0 {
				return out
			}
			n := len(stack) - 1
			stack[n].toks = toks[starts[n] : i+1]
			stack, starts = stack[:n], starts[:n]
		}
	}
	return out
}

func (e *elem) attr(local string) string { return wire.AttrOf(e.start, local) }

// is reports whether e is named local in space.
func (e *elem) is(space, local string) bool {
	return e.start.Name.Space == space && e.start.Name.Local == local
}

// child returns e's first child named local in space, or nil.
func (e *elem) child(space, local string) *elem {
	for _, k := range e.kids {
		if k.is(space, local) {
			return k
		}
	}
	return nil
}

// text is e's character data, trimmed.
func (e *elem) text() string { return strings.TrimSpace(wire.TextOf(e.toks)) }

// pubsubError is a stanza error with a XEP-0060 application condition
// (http://jabber.org/protocol/pubsub#errors) inside it.
type pubsubError struct {
	se  stanza.Error
	app string // local name in pubsub#errors; "" for none
	// feature names the feature of an <unsupported/> condition.
	feature string
}

func (e pubsubError) Error() string { return e.se.Error() + " (" + e.app + ")" }

// TokenReader renders the <error/> (modules.IQHandler's contract).
func (e pubsubError) TokenReader() xml.TokenReader {
	if e.app == "" {
		return e.se.TokenReader()
	}
	app := xml.StartElement{Name: xml.Name{Space: nsErrors, Local: e.app}}
	if e.feature != "" {
		app.Attr = []xml.Attr{{Name: xml.Name{Local: "feature"}, Value: e.feature}}
	}
	return e.se.Wrap(&wire.SliceReader{Toks: []xml.Token{app, app.End()}})
}

// errorOf builds a pubsubError.
func errorOf(typ stanza.ErrorType, cond stanza.Condition, app, text string) pubsubError {
	se := stanza.Error{Type: typ, Condition: cond}
	if text != "" {
		se.Text = map[string]string{"en": text}
	}
	return pubsubError{se: se, app: app}
}

// unsupported is feature-not-implemented with <unsupported feature=.../>
// (XEP-0060 §7.1.3.1 and its kin).
func unsupported(feature string) pubsubError {
	e := errorOf(stanza.Cancel, stanza.FeatureNotImplemented, "unsupported", "")
	e.feature = feature
	return e
}
