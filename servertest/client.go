package servertest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Stanza is one stanza a Client received, with its top-level attributes and
// its whole XML.
type Stanza struct {
	Name  string
	Attrs map[string]string
	XML   string
}

// Decode unmarshals the stanza into v.
func (s Stanza) Decode(v any) error { return xml.Unmarshal([]byte(s.XML), v) }

// Client is a logged-in mellium client whose incoming stanzas (other than
// replies to its own IQs) are collected for the test to read.
type Client struct {
	*xmpp.Session
	in  chan Stanza
	err error // why Serve ended, once in is closed
	t   testing.TB
}

// Err returns the error that ended the client's input stream, once Next,
// Wait or Closed has seen it end.
func (c *Client) Err() error { return c.err }

// ClientOption changes how a Client negotiates.
type ClientOption func(*clientSettings)

type clientSettings struct {
	mechs []sasl.Mechanism
}

// WithMechanisms sets the SASL mechanisms the client offers, strongest first.
func WithMechanisms(m ...sasl.Mechanism) ClientOption {
	return func(c *clientSettings) { c.mechs = m }
}

// Dial logs user in with STARTTLS and SCRAM-SHA-256 and binds a resource.
// mellium v0.22.0's client cannot ask for a resource (its bind payload writes
// an empty <resource/>), so the server always generates one: read it from
// LocalAddr. Use RawLogin for a chosen resource. The client goes away with
// the test.
func (s *Server) Dial(user, password, resource string, opts ...ClientOption) *Client {
	s.t.Helper()
	c, err := s.DialErr(user, password, resource, opts...)
	if err != nil {
		s.t.Fatalf("servertest: dial %s: %v", user, err)
	}
	return c
}

// DialErr is Dial that returns the error instead of failing the test.
func (s *Server) DialErr(user, password, resource string, opts ...ClientOption) (*Client, error) {
	return Connect(s.t, s.Addr, s.ClientTLS, s.Domain().String(), user, password, opts...)
}

// Connect logs user@domain in to any adhocd (or other XMPP server) at addr
// with STARTTLS (tlsCfg) and SCRAM-SHA-256, binds, and serves the session
// until the test ends.
func Connect(t testing.TB, addr string, tlsCfg *tls.Config, domain, user, password string, opts ...ClientOption) (*Client, error) {
	set := clientSettings{mechs: []sasl.Mechanism{sasl.ScramSha256}}
	for _, o := range opts {
		o(&set)
	}
	j, err := jid.New(user, domain, "")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	sess, err := xmpp.NewClientSession(ctx, j, conn,
		xmpp.StartTLS(tlsCfg),
		xmpp.SASL("", password, set.mechs...),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &Client{Session: sess, in: make(chan Stanza, 256), t: t}
	go func() {
		if err := sess.Serve(xmpp.HandlerFunc(c.handle)); err != nil {
			c.err = err
		}
		close(c.in)
	}()
	t.Cleanup(func() {
		_ = sess.Close()
		_ = conn.Close()
	})
	return c, nil
}

func (c *Client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if err := e.EncodeToken(dropNSDecl(*start)); err != nil {
		return err
	}
	// mellium's reader yields the content and then the stanza's end tag.
	if _, err := xmlstream.Copy(e, nsDeclDropper{t}); err != nil {
		return err
	}
	if err := e.Flush(); err != nil {
		return err
	}
	st := Stanza{Name: start.Name.Local, Attrs: map[string]string{}, XML: buf.String()}
	for _, a := range start.Attr {
		st.Attrs[a.Name.Local] = a.Value
	}
	// A roster push must be acknowledged (RFC 6121 §2.1.6); tests read it too.
	if st.Name == "iq" && st.Attrs["type"] == "set" && strings.Contains(st.XML, "jabber:iq:roster") {
		ack := stanza.IQ{ID: st.Attrs["id"], Type: stanza.ResultIQ}
		if _, err := xmlstream.Copy(t, ack.Wrap(nil)); err != nil {
			return err
		}
	}
	select {
	case c.in <- st:
	default:
		// A test that does not read does not block the session.
	}
	// Returning nil on an unanswered IQ get/set makes mellium send
	// service-unavailable, as a real client without that feature would.
	return nil
}

// Next returns the next stanza for which match is true, skipping others, or
// fails the test after timeout.
func (c *Client) Next(timeout time.Duration, match func(Stanza) bool) Stanza {
	c.t.Helper()
	st, ok := c.Wait(timeout, match)
	if !ok {
		c.t.Fatalf("servertest: no matching stanza within %s", timeout)
	}
	return st
}

// Wait is Next without failing: ok is false on timeout or a closed stream.
func (c *Client) Wait(timeout time.Duration, match func(Stanza) bool) (Stanza, bool) {
	deadline := time.After(timeout)
	for {
		select {
		case st, open := <-c.in:
			if !open {
				return Stanza{}, false
			}
			if match == nil || match(st) {
				return st, true
			}
		case <-deadline:
			return Stanza{}, false
		}
	}
}

// Closed reports whether the client's input stream ended within timeout.
func (c *Client) Closed(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		select {
		case _, open := <-c.in:
			if !open {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

// SendRaw sends one stanza written as XML text.
func (c *Client) SendRaw(ctx context.Context, s string) error {
	return c.Send(ctx, xml.NewDecoder(strings.NewReader(s)))
}

// IQ sends an IQ written as XML text and returns the reply as XML text.
func (c *Client) IQ(ctx context.Context, s string) (string, error) {
	resp, err := c.SendIQ(ctx, xml.NewDecoder(strings.NewReader(s)))
	if err != nil {
		return "", err
	}
	defer resp.Close()
	tok, err := resp.Token()
	if err != nil {
		return "", err
	}
	start, _ := tok.(xml.StartElement)
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if err := e.EncodeToken(dropNSDecl(start)); err != nil {
		return "", err
	}
	if _, err := xmlstream.Copy(e, nsDeclDropper{resp}); err != nil {
		return "", err
	}
	if err := e.Flush(); err != nil {
		return "", err
	}
	for _, a := range start.Attr {
		if a.Name.Local == "type" && a.Value == "error" {
			return buf.String(), fmt.Errorf("servertest: IQ error: %s", buf.String())
		}
	}
	return buf.String(), nil
}

// dropNSDecl removes xmlns attributes that encoding/xml keeps beside the
// resolved names, so that re-encoded XML declares each namespace once.
func dropNSDecl(t xml.Token) xml.Token {
	st, ok := t.(xml.StartElement)
	if !ok {
		return t
	}
	st = st.Copy()
	attrs := st.Attr[:0]
	for _, a := range st.Attr {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		attrs = append(attrs, a)
	}
	st.Attr = attrs
	return st
}

// nsDeclDropper applies dropNSDecl to every token, including one returned
// together with io.EOF (xmlstream.Map would drop that one).
type nsDeclDropper struct{ r xml.TokenReader }

func (d nsDeclDropper) Token() (xml.Token, error) {
	t, err := d.r.Token()
	if t != nil {
		t = dropNSDecl(t)
	}
	return t, err
}
