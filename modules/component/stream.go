package component

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire"
)

// nsStream is the namespace of the stream root (RFC 6120 §4.8.1).
const nsStream = "http://etherx.jabber.org/streams"

// closeGrace is how long a closed stream's connection is kept open for
// the component to read the end of the stream before it goes.
const closeGrace = time.Second

// conn is one component's stream: its header and handshake, then the
// stanzas it sends (read in serve's goroutine) and those queued for it
// (written by writer's).
type conn struct {
	m   *Module
	nc  net.Conn
	log *slog.Logger
	// id is the stream id the handshake hashes; domain the component's,
	// once its header named a configured one, and jid its JID.
	id     string
	domain string
	jid    jid.JID
	// pending: counted among the module's connections waiting for their
	// handshake (guarded by the module's mu); authed once the handshake
	// succeeded (the reader's alone).
	pending bool
	authed  bool

	// wmu serialises writes to nc; opened is set once our header is
	// written, closed once our end of the stream is.
	wmu    sync.Mutex
	opened bool
	closed bool

	// The outbound queue: encoded stanzas waiting for the writer, their
	// bytes, and ended once the stream ended (nothing more is queued).
	qmu    sync.Mutex
	queue  []queued
	qbytes int
	ended  bool
	wake   chan struct{}
	done   chan struct{}
}

// queued is a stanza waiting to be written: the element (to answer it if
// it never is) and its encoding.
type queued struct {
	el *wire.Element
	b  []byte
}

func newConn(m *Module, nc net.Conn) *conn {
	return &conn{m: m, nc: nc, id: newID(), log: m.log.With("remote", nc.RemoteAddr().String()),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

// newID returns 128 random bits in hex, a stream id.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// serve runs the stream until the component leaves, an error ends it or
// the module stops.
func (c *conn) serve() {
	lim := c.m.h.Config().Limits
	_ = c.nc.SetReadDeadline(time.Now().Add(lim.PreAuthTimeout.D()))
	dec := wire.NewDecoder(c.nc, lim.MaxStanzaBytes, lim.MaxDepth, lim.MaxAttributes)
	err := c.open(dec)
	if err == nil {
		err = c.handshake(dec)
	}
	if err == nil {
		err = c.run(dec)
	}
	c.end(err)
}

// open reads the component's stream header and answers with ours (XEP-0114
// §3): to names the component's domain, which must be configured.
func (c *conn) open(dec *wire.Decoder) error {
	hdr, err := dec.StreamHeader()
	if err != nil {
		return err
	}
	var to, ns string
	for _, a := range hdr.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "to":
			to = a.Value
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			ns = a.Value
		}
	}
	switch {
	case hdr.Name.Local != "stream" || hdr.Name.Space != nsStream:
		return wire.StreamError(stream.InvalidNamespace, "the root element must be <stream:stream xmlns:stream='"+nsStream+"'>")
	case ns != NS:
		return wire.StreamError(stream.InvalidNamespace, "the content namespace must be "+NS+" (XEP-0114)")
	case to == "":
		return wire.StreamError(stream.ImproperAddressing, "the stream header needs a 'to': the component's domain")
	}
	d, err := jid.Parse(to)
	if err != nil || d.Localpart() != "" || d.Resourcepart() != "" || c.m.secrets[d.Domainpart()] == "" {
		c.m.handshakes.Add(context.Background(), 1, outcome("host-unknown"))
		c.log.Info("component refused: unknown domain", "domain", to)
		return wire.StreamError(stream.HostUnknown, to+" is not a component of this server")
	}
	c.domain, c.jid = d.Domainpart(), d
	c.log = c.log.With("domain", c.domain)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.opened = true
	return c.writeLocked([]byte(c.header()))
}

// header is our stream header: from the component's domain once known,
// else the server's, with the stream id.
func (c *conn) header() string {
	from := c.domain
	if from == "" {
		from = c.m.server.Domainpart()
	}
	var b strings.Builder
	b.WriteString(`<?xml version='1.0'?><stream:stream xmlns:stream='` + nsStream + `' xmlns='` + NS + `' from='`)
	_ = xml.EscapeText(&b, []byte(from))
	b.WriteString(`' id='` + c.id + `'>`)
	return b.String()
}

// handshake reads the component's <handshake/> and checks it against the
// domain's secret: hex(SHA-1(id + secret)), lower case (XEP-0114 §3).
// Success makes the stream its domain's component.
func (c *conn) handshake(dec *wire.Decoder) error {
	el, err := dec.Next()
	if err != nil {
		return err
	}
	if el.Start.Name != (xml.Name{Space: NS, Local: "handshake"}) {
		return wire.StreamError(stream.NotAuthorized, "send <handshake/> first (XEP-0114)")
	}
	var got strings.Builder
	for _, t := range el.Inner {
		switch t := t.(type) {
		case xml.CharData:
			got.Write(t)
		case xml.StartElement:
			c.m.handshakes.Add(context.Background(), 1, outcome("not-authorized"))
			return wire.StreamError(stream.NotAuthorized, "a handshake holds text only")
		}
	}
	sum := sha1.Sum([]byte(c.id + c.m.secrets[c.domain]))
	want := hex.EncodeToString(sum[:])
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(strings.TrimSpace(got.String()))), []byte(want)) != 1 {
		c.m.handshakes.Add(context.Background(), 1, outcome("not-authorized"))
		c.log.Info("component handshake failed")
		return wire.StreamError(stream.NotAuthorized, "the handshake does not match the secret")
	}
	if err := c.m.register(c); err != nil {
		var se stream.Error
		if errors.As(err, &se) && se.Err == stream.Conflict.Err {
			c.m.handshakes.Add(context.Background(), 1, outcome("conflict"))
			c.log.Warn("component refused: its domain has a component connected already")
		}
		return err
	}
	c.authed = true
	c.m.handshakes.Add(context.Background(), 1, outcome("success"))
	if err := c.writeRaw([]byte(`<handshake/>`)); err != nil {
		return err
	}
	c.log.Info("component connected")
	c.m.wg.Add(1)
	go func() {
		defer c.m.wg.Done()
		c.writer()
	}()
	return nil
}

// run reads and routes the component's stanzas until the stream ends.
// Between stanzas nothing bounds the wait; a stanza that has begun must
// end within limits.stanza_timeout.
func (c *conn) run(dec *wire.Decoder) error {
	_ = c.nc.SetReadDeadline(time.Time{})
	inStanza := false
	dec.StanzaWait = func() {
		inStanza = true
		_ = c.nc.SetReadDeadline(time.Now().Add(c.m.h.Config().Limits.StanzaTimeout.D()))
	}
	ctx := context.Background()
	for {
		el, err := dec.Next()
		if err != nil {
			return err
		}
		if inStanza {
			_ = c.nc.SetReadDeadline(time.Time{})
			inStanza = false
		}
		if err := c.m.fromComponent(ctx, c, el); err != nil {
			return err
		}
	}
}

// enqueue queues el, encoded at once, for the writer: at most
// limits.max_outbound_bytes wait (one stanza always may); past that the
// sender is answered resource-constraint.
func (c *conn) enqueue(el *wire.Element) error {
	out := wire.NewOutput()
	// jabber:client outside the element: it is written without a
	// namespace declaration, and the component reads it in its stream's
	// namespace, jabber:component:accept.
	if err := out.EncodeElement(el, stanza.NSClient); err != nil {
		return err // out is dropped: its encoder may be mid-element
	}
	b := bytes.Clone(out.Bytes())
	out.Release()
	limit := c.m.h.Config().Limits.MaxOutboundBytes
	c.qmu.Lock()
	switch {
	case c.ended:
		c.qmu.Unlock()
		return notConnected(c.domain)
	case c.qbytes > 0 && c.qbytes+len(b) > limit:
		c.qmu.Unlock()
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "the component " + c.domain + " is not keeping up"}}
	}
	c.queue = append(c.queue, queued{el: el, b: b})
	c.qbytes += len(b)
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// writer writes what is queued, all of it in one write each time it wakes,
// until the stream ends; a write that fails ends the stream, and what it
// carried is answered as never delivered.
func (c *conn) writer() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		for {
			c.qmu.Lock()
			batch := c.queue
			c.queue = nil
			c.qmu.Unlock()
			if len(batch) == 0 {
				break
			}
			bufs := make(net.Buffers, len(batch))
			n := 0
			for i, q := range batch {
				bufs[i] = q.b
				n += len(q.b)
			}
			err := c.write(&bufs)
			c.qmu.Lock()
			c.qbytes -= n
			c.qmu.Unlock()
			if err != nil {
				c.log.Info("component write failed", "err", err)
				c.m.undelivered(batch)
				_ = c.nc.Close() // the reader ends the stream
				return
			}
		}
	}
}

// errClosed is what writing to a closed stream returns.
var errClosed = errors.New("component: stream closed")

// write writes bufs within limits.write_timeout.
func (c *conn) write(bufs *net.Buffers) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return errClosed
	}
	if d := c.m.h.Config().Limits.WriteTimeout.D(); d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	_, err := bufs.WriteTo(c.nc)
	return err
}

// writeRaw writes b, pre-escaped XML.
func (c *conn) writeRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.writeLocked(b)
}

func (c *conn) writeLocked(b []byte) error {
	if c.closed {
		return errClosed
	}
	if d := c.m.h.Config().Limits.WriteTimeout.D(); d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	}
	_, err := c.nc.Write(b)
	return err
}

// closeStream ends our side of the stream with se, if set, after our
// header if none was sent yet (RFC 6120 §4.9.1.2), and half-closes the
// connection so that the component reads it all.
func (c *conn) closeStream(se *stream.Error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	var b strings.Builder
	if !c.opened {
		b.WriteString(c.header())
	}
	if se != nil {
		b.WriteString(wire.StreamErrorXML(*se, ""))
	}
	b.WriteString(`</stream:stream>`)
	_ = c.nc.SetWriteDeadline(time.Now().Add(closeGrace))
	_, _ = io.WriteString(c.nc, b.String())
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// shutdown closes the stream from another goroutine (the module stops):
// the reader then ends it.
func (c *conn) shutdown(se stream.Error) {
	c.closeStream(&se)
	_ = c.nc.SetReadDeadline(time.Now())
}

// refuse closes a connection that is not served with se.
func (c *conn) refuse(se stream.Error) {
	c.closeStream(&se)
	c.drain()
}

// drain reads what the component still sends, for a moment, so that
// closing the connection does not reset it before the component read the
// end of our stream, and closes it.
func (c *conn) drain() {
	_ = c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.nc, 64<<10))
	_ = c.nc.Close()
}

// end finishes the stream after serve's reading stopped: the component's
// close is answered with ours, an error with the stream error, and what
// was queued and never written is answered as undelivered.
func (c *conn) end(err error) {
	c.wmu.Lock()
	closedByUs := c.closed // the module stopped: its stream error is sent
	c.wmu.Unlock()
	var se stream.Error
	switch {
	case err == nil, errors.Is(err, io.EOF), closedByUs:
		c.closeStream(nil)
	case errors.As(err, &se):
		c.log.Info("component stream error", "condition", se.Err, "text", se.Text)
		c.closeStream(&se)
	default:
		c.log.Info("component connection ended", "err", err)
		c.closeStream(nil)
	}
	c.qmu.Lock()
	c.ended = true
	rest := c.queue
	c.queue = nil
	c.qmu.Unlock()
	close(c.done)
	c.m.unregister(c)
	c.m.undelivered(rest)
	c.drain()
	if c.authed {
		c.log.Info("component disconnected")
	}
}
