package servertest

import (
	"encoding/xml"
	"errors"
	"io"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// An IQClient is a raw client that sends IQs and reads each answer as the
// server wrote it, parsed into Nodes for comparisons that ignore how
// namespaces, quotes and white space were written: what the tests of the
// IQ modules (vcard, private, last) check.

type IQClient struct {
	*Raw
	t   *testing.T
	jid string
	n   int
}

func IQLogin(t *testing.T, srv *Server, user, password string) *IQClient {
	t.Helper()
	return &IQClient{Raw: srv.RawLogin(user, password, "r"), t: t, jid: user + "@localhost/r"}
}

// answer is an IQ's reply as the client read it.
type Answer struct {
	Type, From, To string
	Payload        *Node  // the first child other than <error/>
	Err            string // "type condition" of the <error/>
	Text           string // its <text/>
	XML            string
}

// iq sends an IQ of type typ with payload, addressed to to (none when
// empty), and returns the reply.
func (c *IQClient) IQ(typ, to, payload string) Answer {
	c.t.Helper()
	c.n++
	id := "q" + strconv.Itoa(c.n)
	attr := ""
	if to != "" {
		attr = ` to='` + to + `'`
	}
	c.Write(`<iq type='` + typ + `' id='` + id + `'` + attr + `>` + payload + `</iq>`)
	got := c.Expect(`id=["']` + id + `["'][^>]*(/>|>(?s:.*?)</iq>)`)
	for _, el := range ParseXML(c.t, got) {
		if el.Name.Local != "iq" || el.Attr["id"] != id {
			continue
		}
		a := Answer{Type: el.Attr["type"], From: el.Attr["from"], To: el.Attr["to"], XML: got}
		for _, k := range el.Kids {
			if k.Name.Local != "error" {
				if a.Payload == nil {
					a.Payload = k
				}
				continue
			}
			for _, e := range k.Kids {
				if e.Name.Local == "text" {
					a.Text = e.Text
				} else {
					a.Err = k.Attr["type"] + " " + e.Name.Local
				}
			}
		}
		if a.To != c.jid {
			c.t.Errorf("reply to %q, want %q: %s", a.To, c.jid, got)
		}
		return a
	}
	c.t.Fatalf("no reply to %s in %q", id, got)
	return Answer{}
}

// node is an XML element as parsed, for comparisons that ignore how the
// server wrote namespaces, quotes and the white space between elements.
type Node struct {
	Name xml.Name
	Attr map[string]string
	Text string
	Kids []*Node
}

// canon renders n with its namespaces, sorted attributes, text and
// children; text that is only white space is left out.
func (n *Node) Canon() string {
	var b strings.Builder
	b.WriteString("{" + n.Name.Space + "}" + n.Name.Local)
	keys := make([]string, 0, len(n.Attr))
	for k := range n.Attr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		b.WriteString(" " + k + "=" + strconv.Quote(n.Attr[k]))
	}
	b.WriteString("[")
	if strings.TrimSpace(n.Text) != "" {
		b.WriteString(strconv.Quote(n.Text))
	}
	for _, k := range n.Kids {
		b.WriteString(k.Canon())
	}
	b.WriteString("]")
	return b.String()
}

// parse reads the top-level elements of text as if inside the stream
// (default namespace jabber:client): what the server wrote, or an element
// a test wrote.
func ParseXML(t *testing.T, text string) []*Node {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(`<stream xmlns='jabber:client'>` + text + `</stream>`))
	var stack []*Node
	var top []*Node
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return top
		}
		if err != nil {
			t.Fatalf("parse %q: %v", text, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &Node{Name: tok.Name, Attr: map[string]string{}}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				k := a.Name.Local
				if a.Name.Space != "" {
					k = a.Name.Space + ":" + k
				}
				n.Attr[k] = a.Value
			}
			if len(stack) == 1 {
				top = append(top, n)
			} else if len(stack) > 1 {
				p := stack[len(stack)-1]
				p.Kids = append(p.Kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 1 {
				stack[len(stack)-1].Text += string(tok)
			}
		}
	}
}

// canonOf is the canonical form of one element written by the test.
func CanonOf(t *testing.T, el string) string {
	t.Helper()
	els := ParseXML(t, el)
	if len(els) != 1 {
		t.Fatalf("want one element in %q", el)
	}
	return els[0].Canon()
}

func (a Answer) PayloadCanon() string {
	if a.Payload == nil {
		return "(none)"
	}
	return a.Payload.Canon()
}

// JID is the client's full JID.
func (c *IQClient) JID() string { return c.jid }
