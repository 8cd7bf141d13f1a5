package servertest

import (
	"bytes"
	"context"
	"encoding/xml"
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
	in chan Stanza
	t  testing.TB
}

// ClientOption changes how a Client negotiates.
type ClientOption func(*clientSettings)

type clientSettings struct {
	mechs []sasl.Mechanism
}

// WithMechanisms sets the SASL mechanisms the client offers, strongest first.
func WithMechanisms(m ...sasl.Mechanism) ClientOption {
	return func(c *clientSettings) { c.mechs = m }
}

// Dial logs user in with STARTTLS, SCRAM-SHA-256 and binds resource (a
// server-generated one when empty). The client goes away with the test.
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
	set := clientSettings{mechs: []sasl.Mechanism{sasl.ScramSha256}}
	for _, o := range opts {
		o(&set)
	}
	j, err := jid.New(user, s.Domain().String(), resource)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	sess, err := xmpp.NewClientSession(ctx, j, conn,
		xmpp.StartTLS(s.ClientTLS),
		xmpp.SASL("", password, set.mechs...),
		xmpp.BindResource(),
	)
	if err != nil {
		conn.Close()
		return nil, err
	}
	c := &Client{Session: sess, in: make(chan Stanza, 256), t: s.t}
	go func() {
		_ = sess.Serve(xmpp.HandlerFunc(c.handle))
		close(c.in)
	}()
	s.t.Cleanup(func() {
		_ = sess.Close()
		_ = conn.Close()
	})
	return c, nil
}

func (c *Client) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if err := e.EncodeToken(*start); err != nil {
		return err
	}
	if _, err := xmlstream.Copy(e, t); err != nil {
		return err
	}
	if err := e.EncodeToken(start.End()); err != nil {
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
	var buf bytes.Buffer
	e := xml.NewEncoder(&buf)
	if _, err := xmlstream.Copy(e, resp); err != nil {
		return "", err
	}
	if err := e.Flush(); err != nil {
		return "", err
	}
	return buf.String(), nil
}
