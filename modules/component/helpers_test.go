package component_test

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/modules/component"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// The components of the tests' servers and their secrets.
const (
	gw, gwSecret   = "gw.localhost", "gateway secret & <more>"
	bot, botSecret = "bot.localhost", "bot-secret"
)

// start starts a server whose component module accepts gw and bot on a
// loopback port of its own; the default table's module, configured with
// no component, listens nowhere.
func start(t *testing.T, opts ...servertest.Option) (*servertest.Server, *component.Module) {
	t.Helper()
	m := component.New(component.Options{Listen: "127.0.0.1:0", Components: []component.Component{
		{Domain: gw, Secret: gwSecret}, {Domain: bot, Secret: botSecret},
	}})
	srv := servertest.StartWith(t, []server.Option{server.WithModules(m)}, opts...)
	return srv, m
}

// comp is a component's end of a stream, written as raw XML and read
// element by element.
type comp struct {
	t   *testing.T
	nc  net.Conn
	dec *xml.Decoder
	// id and from are those of the server's stream header.
	id, from string
}

// el is one element the server wrote.
type el struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Inner   string     `xml:",innerxml"`
}

func (e el) attr(name string) string {
	for _, a := range e.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// dial connects to the module and opens a stream to domain; it reads the
// server's header back.
func dial(t *testing.T, m *component.Module, domain string) *comp {
	t.Helper()
	return dialTo(t, m.Addr().String(), domain)
}

// dialTo is dial for the listener at addr.
func dialTo(t *testing.T, addr, domain string) *comp {
	t.Helper()
	c := dialRaw(t, addr)
	c.send(`<?xml version='1.0'?>` + header(domain))
	c.header()
	return c
}

// dialRaw connects to the listener at addr.
func dialRaw(t *testing.T, addr string) *comp {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, servertest.Wait)
	if err != nil {
		t.Fatalf("dial the component port: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &comp{t: t, nc: nc, dec: xml.NewDecoder(nc)}
}

// header is a component's stream header to domain (XEP-0114 §3).
func header(domain string) string {
	return `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='` + domain + `'>`
}

// digest is the handshake's content for a stream id and a secret.
func digest(id, secret string) string {
	sum := sha1.Sum([]byte(id + secret))
	return hex.EncodeToString(sum[:])
}

// header reads the server's stream header.
func (c *comp) header() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(servertest.Wait))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			c.t.Fatalf("no stream header from the server: %v", err)
		}
		if st, ok := tok.(xml.StartElement); ok {
			if st.Name != (xml.Name{Space: "http://etherx.jabber.org/streams", Local: "stream"}) {
				c.t.Fatalf("the server's root is {%s}%s, want stream:stream", st.Name.Space, st.Name.Local)
			}
			for _, a := range st.Attr {
				switch a.Name.Local {
				case "id":
					c.id = a.Value
				case "from":
					c.from = a.Value
				}
			}
			return
		}
	}
}

// connect opens a stream to domain and completes the handshake with secret.
func connect(t *testing.T, m *component.Module, domain, secret string) *comp {
	t.Helper()
	c := dial(t, m, domain)
	c.handshake(secret)
	if got := c.next(); got.XMLName.Local != "handshake" || got.Inner != "" {
		t.Fatalf("after the handshake the server sent <%s>%s, want an empty <handshake/>", got.XMLName.Local, got.Inner)
	}
	return c
}

// handshake sends the handshake for secret.
func (c *comp) handshake(secret string) {
	c.send("<handshake>" + digest(c.id, secret) + "</handshake>")
}

func (c *comp) send(s string) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(servertest.Wait))
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write to the server: %v", err)
	}
}

// next reads the next element the server writes; it fails the test when
// none comes within servertest.Wait or the stream ends.
func (c *comp) next() el {
	c.t.Helper()
	e, err := c.read(servertest.Wait)
	if err != nil {
		c.t.Fatalf("no element from the server: %v", err)
	}
	return e
}

// nextWhere reads elements until one that match accepts.
func (c *comp) nextWhere(match func(el) bool) el {
	c.t.Helper()
	for {
		if e := c.next(); match(e) {
			return e
		}
	}
}

var errStreamEnd = errors.New("the server closed its stream")

func (c *comp) read(timeout time.Duration) (el, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	for {
		tok, err := c.dec.Token()
		if err != nil {
			return el{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			var e el
			if err := c.dec.DecodeElement(&e, &t); err != nil {
				return el{}, err
			}
			return e, nil
		case xml.EndElement:
			return el{}, errStreamEnd
		}
	}
}

// streamError reads up to the server's stream error and the end of its
// stream, and returns the error's condition.
func (c *comp) streamError() string {
	c.t.Helper()
	e := c.nextWhere(func(e el) bool { return e.XMLName.Local == "error" })
	if e.XMLName.Space != "http://etherx.jabber.org/streams" {
		c.t.Fatalf("got {%s}error, want a stream error", e.XMLName.Space)
	}
	if _, err := c.read(servertest.Wait); !errors.Is(err, errStreamEnd) {
		c.t.Fatalf("after the stream error: %v, want the end of the server's stream", err)
	}
	d := xml.NewDecoder(strings.NewReader(e.Inner))
	for {
		tok, err := d.Token()
		if err != nil {
			c.t.Fatalf("stream error %q has no condition", e.Inner)
		}
		if st, ok := tok.(xml.StartElement); ok && st.Name.Local != "text" {
			return st.Name.Local
		}
	}
}

// eventually polls cond until it holds, or fails the test after
// servertest.Wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(servertest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, servertest.Wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// online logs user in, sends initial presence and waits for the echo of
// it, so that messages to the bare JID reach the session.
func online(t *testing.T, srv *servertest.Server, user, password string) *servertest.Client {
	t.Helper()
	c := srv.Dial(user, password, "")
	if err := c.SendRaw(servertest.Context(t, servertest.Wait), `<presence/>`); err != nil {
		t.Fatal(err)
	}
	self := c.LocalAddr().String()
	c.Next(servertest.Wait, func(s servertest.Stanza) bool {
		return s.Name == "presence" && s.Attrs["from"] == self
	})
	return c
}
