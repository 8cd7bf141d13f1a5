package mam_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/adhocd/adhocd/servertest"
)

// XEP-0313 (version 1.1.3) examples as golden cases: the client sends the
// XEP's examples as printed, their JIDs made this server's (capulet.lit
// and montague.lit are localhost), and each answer must have the shape of
// the XEP's example but for what only the server knows: the archive's ids
// and time stamps, and the ids of the messages that carry results, which
// are checked against each other instead.

// xep313JIDs makes the examples' JIDs this server's.
var xep313JIDs = strings.NewReplacer("@capulet.lit", "@localhost", "@montague.lit", "@localhost")

// mamSession is a logged-in raw client and what it receives.
type mamSession struct {
	raw *servertest.Raw
	in  *servertest.Inbox[*servertest.Node]
	jid string
}

func mamLogin(t *testing.T, srv *servertest.Server, user, resource string) *mamSession {
	t.Helper()
	r := srv.RawLogin(user, "pw", resource)
	r.Write(`<presence/>`)
	r.Expect(`<presence`)
	s := &mamSession{raw: r, jid: user + "@localhost/" + resource}
	s.in = servertest.NewInbox(t, r, s.jid, func(el string) (*servertest.Node, error) {
		els := servertest.ParseXML(t, el)
		if len(els) != 1 {
			return nil, fmt.Errorf("%d elements in %q", len(els), el)
		}
		return els[0], nil
	})
	return s
}

// send writes one of the XEP's examples.
func (s *mamSession) send(example string) { s.raw.Write(xep313JIDs.Replace(example)) }

// answer returns the results of the query with IQ id, in the order they
// came, and the IQ that ended it; every result must come before the IQ.
func (s *mamSession) answer(t *testing.T, id string) (results []*servertest.Node, iq *servertest.Node) {
	t.Helper()
	for {
		n := s.in.Next("the answer to "+id, func(n *servertest.Node) bool {
			return (n.Name.Local == "iq" && n.Attr["id"] == id) || (n.Name.Local == "message" && len(n.Kids) == 1 && n.Kids[0].Name.Space == "urn:xmpp:mam:2")
		})
		if n.Name.Local == "iq" {
			return results, n
		}
		results = append(results, n)
	}
}

// shapeNode is a copy of n with the attributes in vary
// ("element@attribute") kept for their presence only and the elements in
// omit ("{namespace}local") left out, at any depth.
func shapeNode(n *servertest.Node, vary, omit []string) *servertest.Node {
	c := *n
	c.Attr = map[string]string{}
	for k, v := range n.Attr {
		if slices.Contains(vary, n.Name.Local+"@"+k) {
			v = "…"
		}
		c.Attr[k] = v
	}
	c.Kids = nil
	for _, k := range n.Kids {
		if !slices.Contains(omit, "{"+k.Name.Space+"}"+k.Name.Local) {
			c.Kids = append(c.Kids, shapeNode(k, vary, omit))
		}
	}
	return &c
}

// like compares got with the XEP's example want, its JIDs made this
// server's.
func like(t *testing.T, what string, got *servertest.Node, want string, vary, omit []string) {
	t.Helper()
	els := servertest.ParseXML(t, xep313JIDs.Replace(want))
	if len(els) != 1 {
		t.Fatalf("want one element in the example %q", want)
	}
	if g, w := shapeNode(got, vary, omit).Canon(), shapeNode(els[0], vary, omit).Canon(); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// resultID is the archive id a result message carries.
func resultID(n *servertest.Node) string { return n.Kids[0].Attr["id"] }

// stanzaIDOf is the id of a delivered message's XEP-0359 stanza-id.
func stanzaIDOf(n *servertest.Node) string {
	for _, k := range n.Kids {
		if k.Name.Space == "urn:xmpp:sid:0" && k.Name.Local == "stanza-id" {
			return k.Attr["id"]
		}
	}
	return ""
}

var archiveIDForm = regexp.MustCompile(`^[0-9a-f]{16}$`)

// TestMAMGolden: §3's archived message with its stanza-id, §4's query and
// its results (the two-message example of §4.2) ended by the IQ with
// <fin/>, §4.1.1's query by JID, §4.4's paging by RSM with its last page
// complete, and the item-not-found of an unknown id, as the XEP prints
// them.
func TestMAMGolden(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("juliet", "pw")
	srv.AddUser("romeo", "pw")
	balcony := mamLogin(t, srv, "juliet", "balcony")
	chamber := mamLogin(t, srv, "juliet", "chamber")
	orchard := mamLogin(t, srv, "romeo", "orchard")

	// The two messages of "Server returns two matching messages", as the
	// XEP has them sent; the first is §3's "Client receives a message
	// that has been archived".
	call := `<message to='juliet@capulet.lit/balcony'
         from='romeo@montague.lit/orchard'
         type='chat'>
  <body>Call me but love, and I'll be new baptized; Henceforth I never will be Romeo.</body>
</message>`
	orchard.send(call)
	got := balcony.in.Next("romeo's message", func(n *servertest.Node) bool { return n.Name.Local == "message" })
	like(t, "an archived message as delivered", got, `<message to='juliet@capulet.lit/balcony'
         from='romeo@montague.lit/orchard'
         type='chat'>
  <body>Call me but love, and I'll be new baptized; Henceforth I never will be Romeo.</body>
  <stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.lit' id='28482-98726-73623' />
</message>`, []string{"stanza-id@id"}, nil)
	first := stanzaIDOf(got)
	what := `<message
         to='romeo@montague.lit/orchard'
         from='juliet@capulet.lit/balcony'
         type='chat' id='8a54s'>
  <body>What man art thou that thus bescreen'd in night so stumblest on my counsel?</body>
</message>`
	balcony.send(what)
	orchard.in.Next("juliet's answer", func(n *servertest.Node) bool { return n.Attr["id"] == "8a54s" })

	// §4: "A user queries their archive for messages", "Their server
	// sends the matching messages", "Server returns the result IQ to
	// signal the end". The forwarded messages are as sent; the <fin/> is
	// complete (§4.4.3: the results were not limited), and its <first/>
	// carries no 'index' (optional, XEP-0059).
	chamber.send(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2' queryid='f27' />
</iq>`)
	results, fin := chamber.answer(t, "juliet1")
	if len(results) != 2 {
		t.Fatalf("%d results, want 2", len(results))
	}
	vary := []string{"message@id", "result@id", "delay@stamp"}
	like(t, "the first result", results[0], `<message id='aeb213' to='juliet@capulet.lit/chamber'>
  <result xmlns='urn:xmpp:mam:2' queryid='f27' id='28482-98726-73623'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>
      <message xmlns='jabber:client'
        to='juliet@capulet.lit/balcony'
        from='romeo@montague.lit/orchard'
        type='chat'>
        <body>Call me but love, and I'll be new baptized; Henceforth I never will be Romeo.</body>
      </message>
    </forwarded>
  </result>
</message>`, vary, nil)
	like(t, "the second result", results[1], `<message id='aeb214' to='juliet@capulet.lit/chamber'>
  <result xmlns='urn:xmpp:mam:2' queryid='f27' id='5d398-28273-f7382'>
    <forwarded xmlns='urn:xmpp:forward:0'>
      <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:09:32Z'/>
      <message xmlns='jabber:client'
         to='romeo@montague.lit/orchard'
         from='juliet@capulet.lit/balcony'
         type='chat' id='8a54s'>
        <body>What man art thou that thus bescreen'd in night so stumblest on my counsel?</body>
      </message>
    </forwarded>
  </result>
</message>`, vary, nil)
	ids := []string{resultID(results[0]), resultID(results[1])}
	for _, id := range ids {
		if !archiveIDForm.MatchString(id) {
			t.Errorf("archive id %q", id)
		}
	}
	if ids[0] != first {
		t.Errorf("the first result's id %q is not the stanza-id %q juliet's session got", ids[0], first)
	}
	for _, r := range results {
		if stamp := r.Kids[0].Kids[0].Kids[0].Attr["stamp"]; !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$`).MatchString(stamp) {
			t.Errorf("delay stamp %q is no XEP-0082 DateTime", stamp)
		}
	}
	like(t, "the end of the query", fin, `<iq type='result' id='juliet1' to='juliet@capulet.lit/chamber'>
  <fin xmlns='urn:xmpp:mam:2' complete='true'>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <first>`+ids[0]+`</first>
      <last>`+ids[1]+`</last>
    </set>
  </fin>
</iq>`, nil, nil)

	// §4.1.1: "Querying for all messages to/from a particular JID", sent
	// by romeo: both messages are in his archive too, his own first.
	orchard.send(`<iq type='set' id='juliet1'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='with'>
        <value>juliet@capulet.lit</value>
      </field>
    </x>
  </query>
</iq>`)
	withJuliet, fin := orchard.answer(t, "juliet1")
	if len(withJuliet) != 2 {
		t.Fatalf("romeo's query with juliet: %d results, want 2", len(withJuliet))
	}
	for i, body := range []string{"Call me but love", "What man art thou"} {
		r := withJuliet[i]
		if _, ok := r.Kids[0].Attr["queryid"]; ok || !strings.Contains(r.Canon(), body) || r.Attr["to"] != orchard.jid {
			t.Errorf("romeo's result %d (no queryid asked, none given): %s", i, r.Canon())
		}
	}
	if fin.Attr["type"] != "result" || fin.Kids[0].Attr["complete"] != "true" {
		t.Errorf("romeo's fin: %s", fin.Canon())
	}

	// §4.4.1: "A query using Result Set Management" with a page of one;
	// "Server responds to client with limited results using RSM": not
	// complete ('complete' omitted). §4.4.2: "A page query using Result
	// Set Management" after it: "Server completes a result with the last
	// page of messages". <count/> is optional (XEP-0059) and adhocd gives
	// none.
	page := func(set string) string {
		return `<iq type='set' id='q29302'>
  <query xmlns='urn:xmpp:mam:2'>
    <x xmlns='jabber:x:data' type='submit'>
      <field var='FORM_TYPE' type='hidden'>
        <value>urn:xmpp:mam:2</value>
      </field>
      <field var='start'>
        <value>2010-08-07T00:00:00Z</value>
      </field>
    </x>
    <set xmlns='http://jabber.org/protocol/rsm'>
      ` + set + `
    </set>
  </query>
</iq>`
	}
	chamber.send(page(`<max>1</max>`))
	p1, fin := chamber.answer(t, "q29302")
	if len(p1) != 1 || resultID(p1[0]) != ids[0] {
		t.Fatalf("the first page of one: %d results", len(p1))
	}
	like(t, "the limited page", fin, `<iq type='result' id='q29302' to='juliet@capulet.lit/chamber'>
  <fin xmlns='urn:xmpp:mam:2'>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <first>`+ids[0]+`</first>
      <last>`+ids[0]+`</last>
    </set>
  </fin>
</iq>`, nil, nil)
	chamber.send(strings.Replace(page(`<max>10</max>
         <after>`+ids[0]+`</after>`), "q29302", "u29303", 1))
	p2, fin := chamber.answer(t, "u29303")
	if len(p2) != 1 || resultID(p2[0]) != ids[1] {
		t.Fatalf("the page after the first: %d results", len(p2))
	}
	like(t, "the last page", fin, `<iq type='result' id='u29303' to='juliet@capulet.lit/chamber'>
  <fin xmlns='urn:xmpp:mam:2' complete='true'>
    <set xmlns='http://jabber.org/protocol/rsm'>
      <first>`+ids[1]+`</first>
      <last>`+ids[1]+`</last>
    </set>
  </fin>
</iq>`, nil, nil)

	// §4.4.2: "Message id not found in archive" for an <after/> the
	// archive does not hold (the XEP's own id); RFC 6120 lets the error
	// carry a <text/>.
	chamber.send(`<iq type='set' id='q29303'>
  <query xmlns='urn:xmpp:mam:2'>
      <x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
        <field var='start'><value>2010-08-07T00:00:00Z</value></field>
      </x>
      <set xmlns='http://jabber.org/protocol/rsm'>
         <max>10</max>
         <after>09af3-cc343-b409f</after>
      </set>
  </query>
</iq>`)
	none, iqErr := chamber.answer(t, "q29303")
	if len(none) != 0 {
		t.Errorf("results before an error: %d", len(none))
	}
	like(t, "an unknown id", iqErr, `<iq type='error' id='q29303' to='juliet@capulet.lit/chamber'>
  <error type='cancel'>
    <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
   </error>
</iq>`, nil, []string{"{urn:ietf:params:xml:ns:xmpp-stanzas}text"})

	// §4.1.5: "Client requests supported query fields", "Server returns
	// supported fields": the mandatory fields, of the types the XEP
	// requires of with, start and end, none of them <required/>, and
	// 'ids' as the XEP's form has it: a list-multi with a XEP-0122
	// <validate/> open to any value, listing no ids.
	chamber.send(`<iq type='get' id='form1'>
  <query xmlns='urn:xmpp:mam:2'/>
</iq>`)
	_, form := chamber.answer(t, "form1")
	if form.Attr["type"] != "result" || len(form.Kids) != 1 || len(form.Kids[0].Kids) != 1 {
		t.Fatalf("the query form: %s", form.Canon())
	}
	x := form.Kids[0].Kids[0]
	types := map[string]string{}
	for _, f := range x.Kids {
		types[f.Attr["var"]] = f.Attr["type"]
		for _, k := range f.Kids {
			if k.Name.Local == "required" {
				t.Errorf("field %s is required", f.Attr["var"])
			}
		}
	}
	if x.Name.Space != "jabber:x:data" || x.Attr["type"] != "form" || !strings.Contains(x.Canon(), `var="FORM_TYPE"[{jabber:x:data}value["urn:xmpp:mam:2"]]`) {
		t.Errorf("the query form: %s", x.Canon())
	}
	for v, typ := range map[string]string{"FORM_TYPE": "hidden", "with": "jid-single", "start": "text-single", "end": "text-single", "before-id": "text-single", "after-id": "text-single"} {
		if types[v] != typ {
			t.Errorf("field %s of type %q, want %s", v, types[v], typ)
		}
	}
	var idsField *servertest.Node
	for _, f := range x.Kids {
		if f.Attr["var"] == "ids" {
			idsField = f
		}
	}
	if idsField == nil {
		t.Fatalf("the query form lacks ids: %s", x.Canon())
	}
	like(t, "the ids field", idsField, `<field xmlns='jabber:x:data' type='list-multi' var='ids'>
        <validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="xs:string">
          <open/>
        </validate>
      </field>`, nil, nil)
}
