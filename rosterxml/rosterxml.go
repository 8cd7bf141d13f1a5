// Package rosterxml renders stored roster items as the jabber:iq:roster
// query of RFC 6121 §2.1, for roster results and pushes and for the admin
// command that shows a user's roster. mellium's roster.Item has no ask
// attribute, which RFC 6121 clients read, so the items are rendered here.
package rosterxml

import (
	"encoding/xml"

	"mellium.im/xmpp/roster"

	"github.com/adhocd/adhocd/storage"
)

// Query returns <query xmlns='jabber:iq:roster'> with the visible items; ver
// is set as the roster version when not empty.
func Query(ver string, items []storage.RosterItem) []xml.Token {
	q := xml.StartElement{Name: xml.Name{Space: roster.NS, Local: "query"}}
	if ver != "" {
		q.Attr = []xml.Attr{{Name: xml.Name{Local: "ver"}, Value: ver}}
	}
	toks := []xml.Token{q}
	for _, it := range items {
		if it.Hidden {
			continue
		}
		st := xml.StartElement{Name: xml.Name{Space: roster.NS, Local: "item"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "jid"}, Value: it.JID},
			{Name: xml.Name{Local: "subscription"}, Value: string(it.Subscription)},
		}}
		if it.Name != "" {
			st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: "name"}, Value: it.Name})
		}
		if it.AskOut {
			st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: "ask"}, Value: "subscribe"})
		}
		toks = append(toks, st)
		for _, g := range it.Groups {
			gs := xml.StartElement{Name: xml.Name{Space: roster.NS, Local: "group"}}
			toks = append(toks, gs, xml.CharData(g), gs.End())
		}
		toks = append(toks, st.End())
	}
	return append(toks, q.End())
}
