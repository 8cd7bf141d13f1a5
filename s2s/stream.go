package s2s

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire"
)

// Namespaces of the stream-level elements s2s streams exchange.
const (
	// NSServer is the default namespace of server-to-server streams.
	NSServer = "jabber:server"
	nsStream = "http://etherx.jabber.org/streams"
	nsTLS    = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL   = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsErrors = "urn:ietf:params:xml:ns:xmpp-streams"
)

// conn is one TCP connection of a stream, either way: its decoder, its
// writes serialised under a lock with a deadline, and what the
// negotiation learnt.
type conn struct {
	nc    net.Conn
	dec   *wire.Decoder
	limit Limits

	wmu    sync.Mutex
	closed bool

	id  string // the stream's id: ours inbound, the peer's outbound
	tls bool
}

// Limits are the bounds of one stream's input and output.
type Limits struct {
	MaxStanzaBytes int
	MaxDepth       int
	MaxAttributes  int
	WriteTimeout   time.Duration
	// SendBuffer is the kernel send buffer (SO_SNDBUF) of outbound
	// connections; 0 leaves the kernel's.
	SendBuffer int
}

func newConn(nc net.Conn, l Limits) *conn {
	c := &conn{nc: nc, limit: l}
	_, c.tls = nc.(*tls.Conn)
	c.dec = wire.NewDecoder(nc, l.MaxStanzaBytes, l.MaxDepth, l.MaxAttributes)
	return c
}

// upgrade replaces the connection with its TLS one, and the decoder with
// one that reads it (RFC 6120 §5.4.3.3: a new stream follows).
func (c *conn) upgrade(tc *tls.Conn) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc, c.tls = tc, true
	c.dec = wire.NewDecoder(tc, c.limit.MaxStanzaBytes, c.limit.MaxDepth, c.limit.MaxAttributes)
}

// write sends b whole within the write timeout.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	if c.limit.WriteTimeout > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.limit.WriteTimeout))
	}
	_, err := c.nc.Write(b)
	return err
}

// close ends the stream: with a stream error when se is set, then
// </stream:stream>, then the connection. It is idempotent.
func (c *conn) close(se *stream.Error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	var b bytes.Buffer
	if se != nil {
		b.WriteString(wire.StreamErrorXML(*se, ""))
	}
	b.WriteString("</stream:stream>")
	_, _ = c.nc.Write(b.Bytes())
	_ = c.nc.Close()
}

// header renders a stream header (RFC 6120 §4.7) that declares the
// dialback prefix (XEP-0220 §2.4.1). id is empty on the initiating side.
func header(from, to, id string) []byte {
	var b bytes.Buffer
	b.WriteString("<?xml version='1.0'?><stream:stream xmlns='" + NSServer + "' xmlns:stream='" + nsStream + "'" + DialbackDecl)
	attr := func(name, v string) {
		if v != "" {
			b.WriteString(" " + name + "='")
			wire.EscapeAttr(&b, v)
			b.WriteString("'")
		}
	}
	attr("from", from)
	attr("to", to)
	attr("id", id)
	b.WriteString(" version='1.0'>")
	return b.Bytes()
}

// peerHeader is what a stream header received says.
type peerHeader struct {
	from, to, id, version string
}

// readHeader reads the peer's stream header and checks what every s2s
// stream needs: the stream element, jabber:server as the default namespace
// and version 1.0 or later.
func (c *conn) readHeader() (peerHeader, error) {
	st, err := c.dec.StreamHeader()
	if err != nil {
		return peerHeader{}, err
	}
	if st.Name.Space != nsStream || st.Name.Local != "stream" {
		return peerHeader{}, wire.StreamError(stream.InvalidNamespace, "the stream's root must be <stream:stream/>")
	}
	h := peerHeader{from: wire.AttrOf(st, "from"), to: wire.AttrOf(st, "to"), id: wire.AttrOf(st, "id"), version: wire.AttrOf(st, "version")}
	var ns string
	for _, a := range st.Attr {
		if a.Name.Space == "" && a.Name.Local == "xmlns" {
			ns = a.Value
		}
	}
	if ns != NSServer {
		return h, wire.StreamError(stream.InvalidNamespace, "a server-to-server stream is in jabber:server")
	}
	if !versionOK(h.version) {
		return h, wire.StreamError(stream.UnsupportedVersion, "version 1.0 is required")
	}
	return h, nil
}

// versionOK reports whether v is 1.0 or later (RFC 6120 §4.7.5).
func versionOK(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major >= 1
}

// features is what a <stream:features/> offers.
type features struct {
	starttls, tlsRequired bool
	external              bool
	dialback              bool
	empty                 bool
}

func parseFeatures(el *wire.Element) (features, error) {
	if el.Start.Name != (xml.Name{Space: nsStream, Local: "features"}) {
		return features{}, fmt.Errorf("s2s: expected <stream:features/>, got <%s/>", el.Start.Name.Local)
	}
	var f features
	kids := el.Children(xml.Name{})
	f.empty = len(kids) == 0
	for _, k := range kids {
		switch k.Start.Name {
		case xml.Name{Space: nsTLS, Local: "starttls"}:
			f.starttls = true
			f.tlsRequired = k.Sub(xml.Name{Space: nsTLS, Local: "required"}) != nil
		case xml.Name{Space: nsSASL, Local: "mechanisms"}:
			for _, m := range k.Children(xml.Name{Space: nsSASL, Local: "mechanism"}) {
				if strings.TrimSpace(elementText(m)) == "EXTERNAL" {
					f.external = true
				}
			}
		case xml.Name{Space: NSDialbackFeature, Local: "dialback"}:
			f.dialback = true
		}
	}
	return f, nil
}

// elementText is the character data directly inside el. wire.TextOf
// wants the element's start tag first, which an Element's Inner lacks.
func elementText(el *wire.Element) string {
	return wire.TextOf(append(append([]xml.Token{el.Start}, el.Inner...), el.Start.End()))
}

// isStreamError reports whether el is <stream:error/>, and renders it.
func isStreamError(el *wire.Element) (string, bool) {
	if el.Start.Name != (xml.Name{Space: nsStream, Local: "error"}) {
		return "", false
	}
	for _, k := range el.Children(xml.Name{}) {
		if k.Start.Name.Space == nsErrors {
			if k.Start.Name.Local == "text" {
				continue
			}
			return k.Start.Name.Local, true
		}
	}
	return "undefined-condition", true
}

// streamID returns a new stream id of 128 random bits or more (RFC 6120
// §4.7.3; dialback keys are bound to it).
func streamID() string { return rand.Text() }

// errNoStream is a failure before any stream was opened with the peer:
// its stanzas get remote-server-not-found; a failure later gets
// remote-server-timeout (design §4).
var errNoStream = errors.New("s2s: no stream could be opened")

// failureCondition is the stanza error that the stanzas queued for a
// domain get when its stream could not be set up.
func failureCondition(err error) stanza.Condition {
	if errors.Is(err, errNoStream) {
		return stanza.RemoteServerNotFound
	}
	return stanza.RemoteServerTimeout
}
