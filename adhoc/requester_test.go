package adhoc_test

import (
	"encoding/xml"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/adhoc"
)

// rosterReply is a completed get-user-roster as XEP-0133 §4.8 shows it (the
// roster query inside the result form), with a second query beside the
// form, an element of an unknown namespace with a foreign attribute, and a
// table, so that every kind of payload is in one reply.
const rosterReply = `<command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#get-user-roster' sessionid='s1' status='completed'>
  <note type='info'>done</note>
  <x xmlns='jabber:x:data' type='result'>
    <field type='hidden' var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>
    <field var='accountjids'><value>juliet@shakespeare.lit</value></field>
    <query xmlns='jabber:iq:roster'>
      <item jid='romeo@montague.net' name='Romeo' subscription='both'><group>Friends</group><group>Lovers</group></item>
      <item jid='nurse@capulet.com' subscription='none' ask='subscribe'/>
    </query>
  </x>
  <query xmlns='jabber:iq:roster' ver='v7'><item jid='tybalt@capulet.com' subscription='from'/></query>
  <x xmlns='jabber:x:data' type='result'>
    <reported><field var='jid' label='JID'/><field var='idle'/></reported>
    <item><field var='jid'><value>a@b</value></field><field var='idle'><value>3</value></field></item>
  </x>
  <p:thing xmlns:p='urn:example:thing' xmlns:q='urn:example:q' q:flag='1' size='2'>a &amp; b<p:sub/></p:thing>
</command>`

// tokensOnly hides the *xml.Decoder under a token reader, as a session's
// reply is read (no raw bytes behind it).
type tokensOnly struct{ r xml.TokenReader }

func (t tokensOnly) Token() (xml.Token, error) { return t.r.Token() }

type rosterQuery struct {
	XMLName xml.Name `xml:"jabber:iq:roster query"`
	Ver     string   `xml:"ver,attr"`
	Items   []struct {
		JID          string   `xml:"jid,attr"`
		Name         string   `xml:"name,attr"`
		Subscription string   `xml:"subscription,attr"`
		Ask          string   `xml:"ask,attr"`
		Groups       []string `xml:"group"`
	} `xml:"item"`
}

// TestParseCommandPayloads checks that nothing a command returns is lost:
// forms with their fields and tables, and every other element (inside a
// form or beside it) as XML that decodes again, whether the reply is read
// from bytes or from a token stream as a session delivers it.
func TestParseCommandPayloads(t *testing.T) {
	readers := map[string]func() xml.TokenReader{
		"bytes":  func() xml.TokenReader { return xml.NewDecoder(strings.NewReader(rosterReply)) },
		"tokens": func() xml.TokenReader { return tokensOnly{xml.NewDecoder(strings.NewReader(rosterReply))} },
	}
	for name, r := range readers {
		t.Run(name, func(t *testing.T) {
			resp, err := adhoc.ParseCommand(r())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != adhoc.Completed || len(resp.Notes) != 1 || len(resp.Forms) != 2 {
				t.Fatalf("response %+v", resp)
			}
			f := resp.Forms[0]
			if f.Value("accountjids") != "juliet@shakespeare.lit" || len(f.Payloads) != 1 || !f.Payloads[0].Is("jabber:iq:roster", "query") {
				t.Fatalf("first form %+v", f)
			}
			var q rosterQuery
			if err := f.Payloads[0].Decode(&q); err != nil {
				t.Fatal(err)
			}
			if len(q.Items) != 2 || q.Items[0].JID != "romeo@montague.net" || q.Items[0].Name != "Romeo" || q.Items[0].Subscription != "both" ||
				strings.Join(q.Items[0].Groups, ",") != "Friends,Lovers" || q.Items[1].Ask != "subscribe" || q.Items[1].Subscription != "none" {
				t.Fatalf("embedded roster %+v from %s", q, f.Payloads[0].XML)
			}

			table := resp.Forms[1]
			if len(table.Reported) != 2 || table.Reported[0].Label != "JID" || len(table.Items) != 1 || table.Items[0].Fields[1].Values[0] != "3" || len(table.Payloads) != 0 {
				t.Fatalf("table form %+v", table)
			}

			if len(resp.Payloads) != 2 {
				t.Fatalf("command payloads %+v", resp.Payloads)
			}
			var q2 rosterQuery
			if err := resp.Payloads[0].Decode(&q2); err != nil || q2.Ver != "v7" || len(q2.Items) != 1 || q2.Items[0].Subscription != "from" {
				t.Fatalf("roster beside the form: %+v %v from %s", q2, err, resp.Payloads[0].XML)
			}
			thing := resp.Payloads[1]
			if !thing.Is("urn:example:thing", "thing") {
				t.Fatalf("unknown payload named %s %s", thing.NS, thing.Local)
			}
			var x struct {
				XMLName xml.Name  `xml:"urn:example:thing thing"`
				Flag    string    `xml:"urn:example:q flag,attr"`
				Size    string    `xml:"size,attr"`
				Text    string    `xml:",chardata"`
				Sub     *struct{} `xml:"urn:example:thing sub"`
			}
			if err := thing.Decode(&x); err != nil || x.Flag != "1" || x.Size != "2" || x.Text != "a & b" || x.Sub == nil {
				t.Fatalf("unknown payload %+v %v from %s", x, err, thing.XML)
			}
		})
	}
}
