package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stanza is a top-level element of the stream, decoded as far as the soak
// needs it.
type stanza struct {
	XMLName xml.Name
	Type    string    `xml:"type,attr"`
	ID      string    `xml:"id,attr"`
	From    string    `xml:"from,attr"`
	To      string    `xml:"to,attr"`
	Body    string    `xml:"body"`
	Delay   *struct{} `xml:"urn:xmpp:delay delay"`
	Error   *struct {
		Inner string `xml:",innerxml"`
	} `xml:"error"`
	Bind *struct {
		JID string `xml:"jid"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Command *struct {
		SessionID string `xml:"sessionid,attr"`
		Status    string `xml:"status,attr"`
	} `xml:"http://jabber.org/protocol/commands command"`
	Roster *struct {
		Items []struct {
			JID          string `xml:"jid,attr"`
			Name         string `xml:"name,attr"`
			Subscription string `xml:"subscription,attr"`
		} `xml:"item"`
	} `xml:"jabber:iq:roster query"`
}

// condition is the first child's name of the stanza's error, or "".
func (s *stanza) condition() string {
	if s.Error == nil {
		return ""
	}
	in := s.Error.Inner
	if i := strings.Index(in, "<"); i >= 0 {
		in = in[i+1:]
		if j := strings.IndexAny(in, " />"); j >= 0 {
			return in[:j]
		}
	}
	return "undefined-condition"
}

// client is one logged-in, bound XMPP stream. A goroutine reads it and hands
// each stanza to onStanza (messages, presences) or to the IQ waiting for it.
type client struct {
	user, jid string
	nc        net.Conn
	dec       *xml.Decoder
	wmu       sync.Mutex
	mu        sync.Mutex
	pending   map[string]chan *stanza
	seq       atomic.Int64
	paused    atomic.Bool
	done      chan struct{}
	err       error
}

var errClosed = errors.New("soak: stream closed")

// login dials addr, authenticates user with PLAIN, binds a resource and
// starts reading; onStanza sees every message and presence.
func login(ctx context.Context, addr, user, password string, onStanza func(*client, *stanza)) (*client, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("soak: dial %s: %w", addr, err)
	}
	c := &client{user: user, nc: nc, pending: map[string]chan *stanza{}, done: make(chan struct{})}
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	c.dec = xml.NewDecoder(bufio.NewReader(nc))
	if err := c.handshake(password); err != nil {
		nc.Close()
		return nil, fmt.Errorf("soak: log in %s: %w", user, err)
	}
	_ = nc.SetDeadline(time.Time{})
	go c.read(onStanza)
	return c, nil
}

func (c *client) handshake(password string) error {
	open := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`
	if err := c.write(open); err != nil {
		return err
	}
	if _, err := c.element("features"); err != nil {
		return err
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + c.user + "\x00" + password))
	if err := c.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + auth + `</auth>`); err != nil {
		return err
	}
	if _, err := c.element("success"); err != nil {
		return err
	}
	if err := c.write(open); err != nil {
		return err
	}
	if _, err := c.element("features"); err != nil {
		return err
	}
	if err := c.write(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`); err != nil {
		return err
	}
	st, err := c.element("iq")
	if err != nil {
		return err
	}
	if st.Type != "result" || st.Bind == nil || st.Bind.JID == "" {
		return fmt.Errorf("bind failed: %s", st.condition())
	}
	c.jid = st.Bind.JID
	return nil
}

// element reads up to the next top-level element named local and decodes it;
// any other element (a failure) is an error.
func (c *client) element(local string) (*stanza, error) {
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return nil, err
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local == "stream" {
			continue
		}
		var st stanza
		if err := c.dec.DecodeElement(&st, &se); err != nil {
			return nil, err
		}
		if se.Name.Local != local {
			return nil, fmt.Errorf("got <%s/> waiting for <%s/>", se.Name.Local, local)
		}
		return &st, nil
	}
}

func (c *client) read(onStanza func(*client, *stanza)) {
	defer close(c.done)
	defer c.failPending()
	for {
		for c.paused.Load() {
			time.Sleep(20 * time.Millisecond)
		}
		tok, err := c.dec.Token()
		if err != nil {
			c.err = err
			return
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local == "stream" {
			if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "stream" {
				c.err = io.EOF
				return
			}
			continue
		}
		st := new(stanza)
		if err := c.dec.DecodeElement(st, &se); err != nil {
			c.err = err
			return
		}
		if st.XMLName.Local == "iq" && (st.Type == "result" || st.Type == "error") {
			c.mu.Lock()
			ch := c.pending[st.ID]
			delete(c.pending, st.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- st
				continue
			}
		}
		if onStanza != nil {
			onStanza(c, st)
		}
	}
}

func (c *client) failPending() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.pending {
		close(ch)
		delete(c.pending, id)
	}
	c.pending = nil
}

func (c *client) write(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(20 * time.Second))
	_, err := io.WriteString(c.nc, s)
	return err
}

// iq sends an IQ of type typ with the payload and waits for its reply.
func (c *client) iq(ctx context.Context, typ, to, payload string) (*stanza, error) {
	id := "q" + strconv.FormatInt(c.seq.Add(1), 10)
	ch := make(chan *stanza, 1)
	c.mu.Lock()
	if c.pending == nil {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.pending[id] = ch
	c.mu.Unlock()
	toAttr := ""
	if to != "" {
		toAttr = " to='" + to + "'"
	}
	if err := c.write("<iq type='" + typ + "' id='" + id + "'" + toAttr + ">" + payload + "</iq>"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	select {
	case st, ok := <-ch:
		if !ok {
			return nil, errClosed
		}
		if st.Type == "error" {
			return st, fmt.Errorf("soak: iq error %s", st.condition())
		}
		return st, nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return nil, fmt.Errorf("soak: iq: %w", ctx.Err())
	}
}

// ping sends an XEP-0199 ping to the server and waits for the answer. The
// server handles a stream's stanzas in order, so the answer confirms that
// every stanza sent before it was handled (stored, for an offline message).
func (c *client) ping(ctx context.Context) error {
	_, err := c.iq(ctx, "get", "localhost", "<ping xmlns='urn:xmpp:ping'/>")
	return err
}

// message sends a chat message with an id and a body.
func (c *client) message(to, id, body string) error {
	var b strings.Builder
	b.WriteString("<message type='chat' to='")
	_ = xml.EscapeText(&b, []byte(to))
	b.WriteString("' id='" + id + "'><body>")
	_ = xml.EscapeText(&b, []byte(body))
	b.WriteString("</body></message>")
	return c.write(b.String())
}

// logout closes the stream and reads what the server still sends until it
// closes its side, so that nothing written to this session is left unread.
func (c *client) logout() {
	c.paused.Store(false)
	_ = c.write("<presence type='unavailable'/></stream:stream>")
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	c.nc.Close()
	<-c.done
}

// drop closes the connection at once.
func (c *client) drop() {
	c.nc.Close()
	<-c.done
}

// closed is closed when the reader has stopped.
func (c *client) closed() <-chan struct{} { return c.done }

// failed reports whether the stream has ended (its reader stopped).
func (c *client) failed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
