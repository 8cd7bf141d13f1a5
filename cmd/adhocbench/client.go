package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xdg-go/scram"
)

// client is one logged-in connection.
type client struct {
	conn    net.Conn
	dec     *xml.Decoder
	w       *bufio.Writer
	seq     int
	broken  bool
	pending *xml.StartElement // read by skipResult, for element to decode
	// lastStatus is the command status of the last result skipResult read.
	lastStatus string
	// jid is the bound full JID, kept with --chat; to is the partner's,
	// escaped, and buf the buffer its messages are built in.
	jid, to string
	buf     []byte
	// r is what dec reads; the chat workload reads it directly (nextTag),
	// into tag.
	r   *bufio.Reader
	tag []byte
}

// dial connects connection i to its server (o.server(i)) and logs it in
// as its user (o.user(i)).
func dial(ctx context.Context, o options, i int) (*client, error) {
	user := o.user(i)
	nc, err := dialTCP(ctx, o.server(i))
	if err != nil {
		return nil, err
	}
	c := &client{conn: nc}
	c.reset(nc)
	_ = nc.SetDeadline(time.Now().Add(o.timeout))
	defer func() { _ = c.conn.SetDeadline(time.Time{}) }()
	if err := c.open(o.domain); err != nil {
		nc.Close()
		return nil, err
	}
	if o.tls {
		if err := c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
			return nil, err
		}
		if _, err := c.element("proceed"); err != nil {
			return nil, err
		}
		tc := tls.Client(nc, &tls.Config{ServerName: o.domain, InsecureSkipVerify: o.insecure})
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		c.conn = tc
		c.reset(tc)
		if err := c.open(o.domain); err != nil {
			return nil, err
		}
	}
	if err := c.auth(o, user); err != nil {
		c.conn.Close()
		return nil, fmt.Errorf("%s: %w", user, err)
	}
	c.reset(c.conn)
	if err := c.open(o.domain); err != nil {
		return nil, err
	}
	if err := c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`); err != nil {
		return nil, err
	}
	var bound *node
	if o.chat {
		bound = &node{}
	}
	if err := c.waitIQ("bind", bound); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	if bound != nil {
		if c.jid = boundJID(bound); c.jid == "" {
			c.conn.Close()
			return nil, errors.New("bind: no JID in the result")
		}
	}
	// Legacy session establishment for servers that still want it.
	if err := c.send(`<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`); err != nil {
		return nil, err
	}
	_ = c.waitIQ("sess", nil)
	return c, nil
}

// boundJID is the full JID in a bind result.
func boundJID(iq *node) string {
	for _, b := range iq.Nodes {
		if b.XMLName.Local != "bind" {
			continue
		}
		for _, j := range b.Nodes {
			if j.XMLName.Local == "jid" {
				return strings.TrimSpace(j.Text)
			}
		}
	}
	return ""
}

// dialTCP connects to addr until ctx ends. The dial's own context has no
// deadline, only cancellation: with Go 1.26 on Linux, a dial whose context
// has a deadline fails now and then at once with "i/o timeout" when
// thousands of connections a second are opened and closed (about one in
// ten in the login mode, against any server), while the same loop without
// the deadline never fails.
func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	dctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	var d net.Dialer
	return d.DialContext(dctx, "tcp", addr)
}

func (c *client) reset(nc net.Conn) {
	c.r = bufio.NewReaderSize(nc, 16<<10)
	c.dec = xml.NewDecoder(c.r)
	c.w = bufio.NewWriterSize(nc, 4<<10)
}

func (c *client) close() {
	_, _ = io.WriteString(c.conn, "</stream:stream>")
	c.conn.Close()
}

func (c *client) send(s string) error {
	if _, err := c.w.WriteString(s); err != nil {
		return err
	}
	return c.w.Flush()
}

// open sends a stream header and reads up to the stream features.
func (c *client) open(domain string) error {
	if err := c.send(`<?xml version='1.0'?><stream:stream to='` + domain + `' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`); err != nil {
		return err
	}
	_, err := c.element("features")
	return err
}

// element reads top-level elements until one named local, which it returns
// decoded as a generic node; a stream error ends the wait.
func (c *client) element(local string) (*node, error) {
	for {
		var t xml.Token
		var err error
		if c.pending != nil {
			t, c.pending = *c.pending, nil
		} else if t, err = c.dec.Token(); err != nil {
			return nil, err
		}
		st, ok := t.(xml.StartElement)
		if !ok {
			continue
		}
		if st.Name.Local == "stream" {
			continue
		}
		var n node
		if err := c.dec.DecodeElement(&n, &st); err != nil {
			return nil, err
		}
		switch {
		case st.Name.Local == local:
			return &n, nil
		case st.Name.Local == "error" && st.Name.Space == "http://etherx.jabber.org/streams":
			return nil, fmt.Errorf("stream error: %w", errCondition(n.firstChild()))
		case st.Name.Local == "failure":
			return nil, fmt.Errorf("SASL failure: %w", errCondition(n.firstChild()))
		}
		if local == "success|challenge" && (st.Name.Local == "success" || st.Name.Local == "challenge") {
			n.XMLName = st.Name
			return &n, nil
		}
	}
}

// node is any element.
type node struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []node     `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *node) firstChild() string {
	for _, c := range n.Nodes {
		if c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return "undefined-condition"
}

func (n *node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (c *client) auth(o options, user string) error {
	switch o.mech {
	case "PLAIN":
		if err := c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
			base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+o.password)) + `</auth>`); err != nil {
			return err
		}
		_, err := c.element("success")
		return err
	case "SCRAM-SHA-1", "SCRAM-SHA-256":
		sc, err := o.scram.client(o.mech, user, o.password)
		if err != nil {
			return err
		}
		conv := sc.NewConversation()
		msg, err := conv.Step("")
		if err != nil {
			return err
		}
		if err := c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='` + o.mech + `'>` + base64.StdEncoding.EncodeToString([]byte(msg)) + `</auth>`); err != nil {
			return err
		}
		for {
			n, err := c.element("success|challenge")
			if err != nil {
				return err
			}
			data, err := base64.StdEncoding.DecodeString(strings.TrimSpace(n.Text))
			if err != nil {
				return err
			}
			resp, err := conv.Step(string(data))
			if err != nil {
				return err
			}
			if n.XMLName.Local == "success" {
				if !conv.Valid() {
					return errors.New("the server's SCRAM signature is wrong")
				}
				return nil
			}
			if err := c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString([]byte(resp)) + `</response>`); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown mechanism %q", o.mech)
}

// scramClients keeps one SCRAM client per user, so that a user logging in
// again reuses the salted password its client derived the first time, as
// real clients do; the PBKDF2 cost of a login is then the server's alone.
type scramClients struct {
	mu      sync.Mutex
	clients map[string]*scram.Client
}

func (s *scramClients) client(mech, user, password string) (*scram.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := mech + "\x00" + user
	if c, ok := s.clients[key]; ok {
		return c, nil
	}
	h := scram.SHA256
	if mech == "SCRAM-SHA-1" {
		h = scram.SHA1
	}
	c, err := h.NewClient(user, password, "")
	if err != nil {
		return nil, err
	}
	if s.clients == nil {
		s.clients = map[string]*scram.Client{}
	}
	s.clients[key] = c
	return c, nil
}

// errCondition is an IQ error reply, named by its condition.
type errCondition string

func (e errCondition) Error() string { return string(e) }

// waitIQ reads until the IQ reply with id; only a result with that id is a
// success. into, if set, receives the reply; without it a result's body is
// skipped unread, which keeps the load tool's own cost low.
func (c *client) waitIQ(id string, into *node) error {
	for {
		if into == nil {
			ok, err := c.skipResult(id)
			if err != nil {
				c.broken = true
				return err
			}
			if ok {
				return nil
			}
		}
		n, err := c.element("iq")
		if err != nil {
			c.broken = true
			return err
		}
		if n.attr("id") != id {
			continue
		}
		if into != nil {
			*into = *n
		}
		switch n.attr("type") {
		case "result":
			return nil
		case "error":
			for _, ch := range n.Nodes {
				if ch.XMLName.Local == "error" {
					cond := ch.firstChild()
					for _, g := range ch.Nodes {
						if g.XMLName.Space == "http://jabber.org/protocol/commands" {
							cond = g.XMLName.Local
						}
					}
					return errCondition(cond)
				}
			}
			return errCondition("error")
		default:
			continue
		}
	}
}

// skipResult reads the next top-level element: if it is the result IQ with
// id, it is skipped unread and ok is true. Anything else is left for
// element to read: the decoder is rewound by handing it the start again.
func (c *client) skipResult(id string) (ok bool, err error) {
	for {
		t, err := c.dec.Token()
		if err != nil {
			return false, err
		}
		st, isStart := t.(xml.StartElement)
		if !isStart || st.Name.Local == "stream" {
			continue
		}
		var gotID, typ string
		for _, a := range st.Attr {
			switch a.Name.Local {
			case "id":
				gotID = a.Value
			case "type":
				typ = a.Value
			}
		}
		if st.Name.Local == "iq" && gotID == id && typ == "result" {
			// Read only the <command/> child's status; skip the rest.
			c.lastStatus = ""
			for {
				t, err := c.dec.Token()
				if err != nil {
					return false, err
				}
				switch t := t.(type) {
				case xml.StartElement:
					for _, a := range t.Attr {
						if a.Name.Local == "status" {
							c.lastStatus = a.Value
						}
					}
					if err := c.dec.Skip(); err != nil {
						return false, err
					}
				case xml.EndElement:
					return true, nil
				}
			}
		}
		if st.Name.Local == "iq" && gotID != id {
			if err := c.dec.Skip(); err != nil {
				return false, err
			}
			continue
		}
		c.pending = &st
		return false, nil
	}
}

// loginLoop logs connection i's user in and out again and again, on its
// server, until ctx ends (or o.count logins), calling observe with the time
// from dialling to the bound resource; it returns the logins that
// succeeded.
func loginLoop(ctx context.Context, o options, i int, errs map[string]int, observe func(time.Duration)) int64 {
	var ok int64
	for n := 0; o.count == 0 || n < o.count; n++ {
		begin := time.Now()
		c, err := dial(ctx, o, i)
		if ctx.Err() != nil {
			if err == nil {
				c.close()
			}
			return ok
		}
		observe(time.Since(begin))
		var cond errCondition
		switch {
		case errors.As(err, &cond):
			errs[string(cond)]++
		case err != nil:
			errs["connection"]++
		default:
			ok++
			c.close()
		}
	}
	return ok
}

// runFlow executes the node once (and the flow's further stages), calling
// observe with each request's latency; it reports whether the whole flow
// completed.
func (c *client) runFlow(ctx context.Context, o options, flow []step, errs map[string]int, observe func(time.Duration)) bool {
	sid := ""
	steps := append([]step{{action: "execute"}}, flow...)
	for i, st := range steps {
		c.seq++
		id := "b" + strconv.Itoa(c.seq)
		var b strings.Builder
		b.WriteString(`<iq type='set' id='` + id + `' to='` + o.domain + `'><command xmlns='http://jabber.org/protocol/commands' node='`)
		xmlEscape(&b, o.node)
		b.WriteString(`' action='` + st.action + `'`)
		if sid != "" {
			b.WriteString(` sessionid='`)
			xmlEscape(&b, sid)
			b.WriteString(`'`)
		}
		b.WriteString(`>`)
		if len(st.values) > 0 {
			b.WriteString(`<x xmlns='jabber:x:data' type='submit'>`)
			for _, kv := range st.values {
				b.WriteString(`<field var='`)
				xmlEscape(&b, kv[0])
				b.WriteString(`'><value>`)
				xmlEscape(&b, kv[1])
				b.WriteString(`</value></field>`)
			}
			b.WriteString(`</x>`)
		}
		b.WriteString(`</command></iq>`)
		_ = c.conn.SetDeadline(time.Now().Add(o.timeout))
		begin := time.Now()
		if err := c.send(b.String()); err != nil {
			c.broken = true
			errs["connection"]++
			return false
		}
		var reply node
		into := &reply
		if i == len(steps)-1 {
			into = nil // the last stage: only its status matters
		}
		err := c.waitIQ(id, into)
		observe(time.Since(begin))
		var cond errCondition
		switch {
		case errors.As(err, &cond):
			errs[string(cond)]++
			return false
		case err != nil:
			if ctx.Err() == nil {
				errs["connection"]++
			}
			return false
		}
		if into == nil {
			return c.lastStatus == "completed"
		}
		for _, ch := range reply.Nodes {
			if ch.XMLName.Local == "command" {
				sid = ch.attr("sessionid")
				if st := ch.attr("status"); st == "completed" || st == "canceled" {
					return false // ended before the flow's last stage
				}
			}
		}
	}
	return false
}

func xmlEscape(b *strings.Builder, s string) { _ = xml.EscapeText(b, []byte(s)) }
