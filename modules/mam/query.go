package mam

import (
	"context"
	"encoding/xml"
	"errors"
	"slices"
	"strconv"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// The query's form, its parsing, its results and its <fin/> serve every
// archive that speaks this protocol: an account's (this package's query)
// and a group chat room's (modules/muc), so that both read a query and
// page alike.

// queryFields are the fields of the query form (XEP-0313 §4.1.5 "Retrieving
// form fields", the extended before-id, after-id and ids among them). ids is a
// list-multi open to any value (open): the XEP's form has it so, with a
// XEP-0122 <validate/> saying that the client gives the ids, since the
// server lists none of them.
var queryFields = []struct {
	v, typ string
	open   bool
}{
	{"with", "jid-single", false}, {"start", "text-single", false}, {"end", "text-single", false},
	{"before-id", "text-single", false}, {"after-id", "text-single", false}, {"ids", "list-multi", true},
}

// nsXDataValidate is XEP-0122's, for the <validate/> of ids.
const nsXDataValidate = "http://jabber.org/protocol/xdata-validate"

// QueryForm is the answer to a query get (XEP-0313 §4.1.5 "Retrieving
// form fields"): the <query/> with the form the queries submit.
func QueryForm() []xml.Token {
	q := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: "query"}}
	x := xml.StartElement{Name: xml.Name{Space: nsXData, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "form"}}}
	toks := []xml.Token{q, x}
	field := func(v, typ, value string, open bool) {
		f := xml.StartElement{Name: xml.Name{Space: nsXData, Local: "field"}, Attr: []xml.Attr{{Name: xml.Name{Local: "var"}, Value: v}, {Name: xml.Name{Local: "type"}, Value: typ}}}
		toks = append(toks, f)
		if value != "" {
			val := xml.StartElement{Name: xml.Name{Space: nsXData, Local: "value"}}
			toks = append(toks, val, xml.CharData(value), val.End())
		}
		if open {
			val := xml.StartElement{Name: xml.Name{Space: nsXDataValidate, Local: "validate"}, Attr: []xml.Attr{{Name: xml.Name{Local: "datatype"}, Value: "xs:string"}}}
			o := xml.StartElement{Name: xml.Name{Space: nsXDataValidate, Local: "open"}}
			toks = append(toks, val, o, o.End(), val.End())
		}
		toks = append(toks, f.End())
	}
	field("FORM_TYPE", "hidden", nsMAM, false)
	for _, f := range queryFields {
		field(f.v, f.typ, "", f.open)
	}
	return append(toks, x.End(), q.End())
}

func badRequest(text string) error {
	return stanza.Error{Type: stanza.Modify, Condition: stanza.BadRequest, Text: map[string]string{"en": text}}
}

// ParseQuery reads a query's form and result set (XEP-0313 §4, XEP-0059)
// into a storage query of at most maxPage messages; what it cannot take is
// the stanza error to answer (bad-request, jid-malformed,
// feature-not-implemented for paging by index).
func ParseQuery(q *wire.Element, maxPage int) (storage.ArchiveQuery, error) {
	aq := storage.ArchiveQuery{Max: maxPage}
	if x := q.Sub(xml.Name{Space: nsXData, Local: "x"}); x != nil {
		for _, f := range x.Children(xml.Name{Space: nsXData, Local: "field"}) {
			var vals []string
			for _, v := range f.Children(xml.Name{Space: nsXData, Local: "value"}) {
				vals = append(vals, wire.TextOf(append([]xml.Token{v.Start}, append(v.Inner, v.Start.End())...)))
			}
			first := ""
			if len(vals) > 0 {
				first = vals[0]
			}
			var err error
			switch f.Attr("var") {
			case "FORM_TYPE":
				if first != nsMAM {
					return aq, badRequest("the FORM_TYPE of a query is " + nsMAM)
				}
			case "with":
				if first != "" {
					var j jid.JID
					if j, err = jid.Parse(first); err != nil {
						return aq, stanza.Error{Type: stanza.Modify, Condition: stanza.JIDMalformed}
					}
					aq.With = j.String()
				}
			case "start":
				aq.Start, err = parseTime(first)
			case "end":
				aq.End, err = parseTime(first)
				aq.End = widenEnd(aq.End)
			case "before-id":
				aq.BeforeID = first
			case "after-id":
				aq.AfterID = first
			case "ids":
				aq.IDs = vals
			}
			if err != nil {
				return aq, badRequest(f.Attr("var") + ": " + err.Error())
			}
		}
	}
	if set := q.Sub(xml.Name{Space: nsRSM, Local: "set"}); set != nil {
		if m, ok := set.Text(xml.Name{Space: nsRSM, Local: "max"}); ok {
			n, err := strconv.Atoi(m)
			if err != nil || n < 0 {
				return aq, badRequest("<max/> is a count")
			}
			aq.Max = min(max(n, 1), maxPage)
		}
		if a, ok := set.Text(xml.Name{Space: nsRSM, Local: "after"}); ok && a != "" {
			aq.AfterID = a
		}
		if b, ok := set.Text(xml.Name{Space: nsRSM, Local: "before"}); ok {
			aq.Last = true
			if b != "" {
				aq.BeforeID = b
			}
		}
		if set.Sub(xml.Name{Space: nsRSM, Local: "index"}) != nil {
			return aq, stanza.Error{Type: stanza.Cancel, Condition: stanza.FeatureNotImplemented, Text: map[string]string{"en": "paging by index is not offered"}}
		}
	}
	return aq, nil
}

// widenEnd makes an end stamp take all of the unit it is written in.
// Stamps go out in milliseconds (modules.Stamp) while messages are stored
// to the nanosecond, so a client that asks for the messages up to a stamp
// it was sent gets the message of that stamp too; an end in whole seconds,
// as people and older stamps write it, takes all of its second.
func widenEnd(end time.Time) time.Time {
	switch ns := end.Nanosecond(); {
	case end.IsZero():
		return end
	case ns == 0:
		return end.Add(time.Second - time.Nanosecond)
	case ns%int(time.Millisecond) == 0:
		return end.Add(time.Millisecond - time.Nanosecond)
	}
	return end
}

// parseTime reads a XEP-0082 date and time.
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// Flipped reports whether a query asks for a flipped page (XEP-0313
// §4.3.4 "Flipped pages", part of urn:xmpp:mam:2#extended): a <flip-page/> in the
// <query/>, beside its <set/>.
func Flipped(q *wire.Element) bool {
	return q.Sub(xml.Name{Space: nsMAM, Local: "flip-page"}) != nil
}

// SendOrder returns a page (oldest first, as the store returns it) in the
// order its results are sent: as it is, or newest first when flip
// (Flipped). Flipping changes the order of sending alone: the page holds
// what it would hold unflipped, and its <fin/> (Fin, given the page as
// stored) names the same first (oldest) and last (newest) ids, so that a
// client pages on with <before/> or <after/> as it would unflipped.
func SendOrder(msgs []storage.ArchivedMessage, flip bool) []storage.ArchivedMessage {
	if !flip {
		return msgs
	}
	out := slices.Clone(msgs)
	slices.Reverse(out)
	return out
}

// query answers a query (XEP-0313 §4): each message of the page as a
// <result/>, in SendOrder, written before the IQ result, which carries
// the <fin/>.
func (m *Module) query(ctx context.Context, iq modules.IQ) (xml.TokenReader, error) {
	q := &wire.Element{Start: iq.Payload, Inner: iq.Inner}
	aq, err := ParseQuery(q, m.h.Config().Limits.MAM.MaxPage)
	if err != nil {
		return nil, err
	}
	m.queries.Add(ctx, 1)
	msgs, complete, err := m.store.QueryArchive(ctx, iq.From.Localpart(), aq)
	if err != nil {
		return nil, QueryError(err)
	}
	queryID := q.Attr("queryid")
	for _, a := range SendOrder(msgs, Flipped(q)) {
		iq.Session.Reply(ResultMessage(jid.JID{}, iq.From, queryID, a))
	}
	return modules.Tokens(Fin(msgs, complete)), nil
}

// QueryError is the answer to a query the archive failed: item-not-found
// for an id it does not hold (storage.ErrNotFound, XEP-0313 §4.1.2), err
// itself otherwise.
func QueryError(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return stanza.Error{Type: stanza.Cancel, Condition: stanza.ItemNotFound, Text: map[string]string{"en": "no such message in the archive"}}
	}
	return err
}

// Fin is the <fin/> that ends the answer to a query (XEP-0313 §4.3): its
// complete flag, and the result set's first and last ids.
func Fin(msgs []storage.ArchivedMessage, complete bool) []xml.Token {
	fin := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: "fin"}}
	if complete {
		fin.Attr = []xml.Attr{{Name: xml.Name{Local: "complete"}, Value: "true"}}
	}
	set := xml.StartElement{Name: xml.Name{Space: nsRSM, Local: "set"}}
	toks := []xml.Token{fin, set}
	if len(msgs) > 0 {
		first := xml.StartElement{Name: xml.Name{Space: nsRSM, Local: "first"}}
		last := xml.StartElement{Name: xml.Name{Space: nsRSM, Local: "last"}}
		toks = append(toks, first, xml.CharData(msgs[0].ID), first.End(), last, xml.CharData(msgs[len(msgs)-1].ID), last.End())
	}
	return append(toks, set.End(), fin.End())
}

// ResultMessage is one archived message as a query's result (XEP-0313
// §4.2): forwarded with the archive's stamp, from the archive (from; none
// for an account's own, which its server sends) to the requesting session.
func ResultMessage(from, to jid.JID, queryID string, a storage.ArchivedMessage) *wire.Element {
	res := xml.StartElement{Name: xml.Name{Space: nsMAM, Local: "result"}, Attr: []xml.Attr{{Name: xml.Name{Local: "id"}, Value: a.ID}}}
	if queryID != "" {
		res.Attr = append(res.Attr, xml.Attr{Name: xml.Name{Local: "queryid"}, Value: queryID})
	}
	fwd := xml.StartElement{Name: xml.Name{Space: nsForward, Local: "forwarded"}}
	delay := xml.StartElement{Name: xml.Name{Space: nsDelay, Local: "delay"}, Attr: []xml.Attr{{Name: xml.Name{Local: "stamp"}, Value: modules.Stamp(a.Stamp)}}}
	inner := []xml.Token{res, fwd, delay, delay.End()}
	inner = append(inner, wire.Parse(a.XML)...)
	inner = append(inner, fwd.End(), res.End())
	el := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "message"}}, Inner: inner}
	if f := from.String(); f != "" {
		el.SetAttr("from", f)
	}
	el.SetAttr("to", to.String())
	el.SetAttr("id", a.ID)
	return el
}
