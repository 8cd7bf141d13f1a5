package s2s

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire"
)

// queued is a stanza waiting for its stream: as it will be written, and
// as it was given, to be answered if it cannot be.
type queued struct {
	el *wire.Element
	b  []byte
}

var errClosed = errors.New("s2s: the stream is closing")

// out is the outbound stream of one domain pair: its queue, and the
// goroutine that sets the stream up, then writes the queue to it until it
// is idle, fails or the pool closes.
type out struct {
	p   *Pool
	key pair

	mu     sync.Mutex
	q      []queued
	qbytes int
	closed bool
	wake   chan struct{}
	c      *conn
	auth   string
	since  time.Time
}

func newOut(p *Pool, k pair) *out {
	return &out{p: p, key: k, wake: make(chan struct{}, 1), since: time.Now()}
}

// enqueue adds a stanza, within the queue's bounds (resource-constraint
// past them).
func (o *out) enqueue(q queued) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errClosed
	}
	l := o.p.cfg.Limits
	if len(o.q) >= l.QueueStanzas || o.qbytes+len(q.b) > l.QueueBytes {
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "too many stanzas are waiting for " + o.key.remote}}
	}
	o.q = append(o.q, q)
	o.qbytes += len(q.b)
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return nil
}

// take empties the queue.
func (o *out) take() []queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.q
	o.q, o.qbytes = nil, 0
	return q
}

// finish closes the queue: what is in it, and what comes next, is
// answered with cond (nothing, when cond is empty: it is left to a new
// stream).
func (o *out) finish(cond stanza.Condition, text string) {
	o.bounce(o.shut(), cond, text)
}

// shut takes o out of the pool and closes its queue, returning what was
// in it.
func (o *out) shut() []queued {
	o.p.removeOut(o)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	q := o.q
	o.q, o.qbytes = nil, 0
	return q
}

func (o *out) bounce(q []queued, cond stanza.Condition, text string) {
	o.p.m.bounce(o.key.remote, cond, len(q))
	for _, s := range q {
		se := stanza.Error{Type: errType(cond), Condition: cond, By: domainJID(o.key.local)}
		if text != "" {
			se.Text = map[string]string{"en": text}
		}
		o.p.host.Bounce(s.el, se)
	}
}

func (o *out) info() Conn {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := Conn{Local: o.key.local, Remote: o.key.remote, Auth: o.auth, Since: o.since, Queued: len(o.q)}
	if o.c != nil {
		c.TLS = o.c.tls
	}
	return c
}

// run sets the stream up, then writes.
func (o *out) run() {
	defer o.p.wg.Done()
	log := o.p.log.With("local", o.key.local, "remote", o.key.remote, "direction", "out")
	ctx, cancel := context.WithTimeout(o.p.ctx, o.p.cfg.ConnectTimeout.D())
	c, auth, err := o.p.connect(ctx, o.key.local, o.key.remote, true)
	cancel()
	if err != nil {
		cond := failureCondition(err)
		log.Info("s2s: stream not set up", "err", err, "bounce", cond)
		o.p.fail(o.key.remote, cond)
		o.finish(cond, "")
		return
	}
	o.p.succeed(o.key.remote)
	o.mu.Lock()
	o.c, o.auth, o.since = c, auth, time.Now()
	o.mu.Unlock()
	log.Info("s2s: stream established", "auth", auth, "tls", c.tls)
	// The peer sends nothing on this stream but stream errors, white space
	// and its end: read them, so that a closed stream is noticed.
	dead := make(chan struct{})
	go func() {
		defer close(dead)
		for {
			el, err := c.dec.Next()
			if err != nil {
				return
			}
			if cond, ok := isStreamError(el); ok {
				log.Info("s2s: stream error from the peer", "condition", cond)
				return
			}
		}
	}()
	idle := o.p.cfg.IdleTimeout.D()
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case <-o.wake:
			q := o.take()
			for i, s := range q {
				if err := c.write(s.b); err != nil {
					log.Info("s2s: write failed", "err", err)
					c.close(nil)
					o.bounce(q[i:], stanza.RemoteServerTimeout, "the stream to "+o.key.remote+" failed")
					o.finish(stanza.RemoteServerTimeout, "the stream to "+o.key.remote+" failed")
					return
				}
				o.p.m.stanza(o.key.remote, dirOut, 1)
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(idle)
		case <-timer.C:
			log.Debug("s2s: idle stream closed")
			o.closeAndRequeue(c)
			return
		case <-dead:
			log.Info("s2s: the peer closed the stream")
			o.closeAndRequeue(c)
			return
		case <-o.p.ctx.Done():
			c.close(nil)
			o.finish(stanza.RemoteServerTimeout, "the server is shutting down")
			return
		}
	}
}

// closeAndRequeue ends an idle or closed stream; what was queued in the
// meantime goes to a new stream.
func (o *out) closeAndRequeue(c *conn) {
	c.close(nil)
	q := o.shut()
	if len(q) > 0 {
		// Sent again through the pool, which opens a new stream.
		n := newOut(o.p, o.key)
		o.p.mu.Lock()
		if o.p.closed || o.p.outs[o.key] != nil {
			o.p.mu.Unlock()
			o.bounce(q, stanza.RemoteServerTimeout, "the stream to "+o.key.remote+" closed")
			return
		}
		o.p.outs[o.key] = n
		n.q = q
		for _, s := range q {
			n.qbytes += len(s.b)
		}
		n.wake <- struct{}{}
		o.p.wg.Add(1)
		o.p.mu.Unlock()
		go n.run()
	}
}

// connect opens a stream from local to remote and negotiates it: TLS, then
// SASL EXTERNAL or dialback when auth is set (an authenticated stream),
// or nothing more (the connection of a <db:verify/>). It tries each target
// in turn until one succeeds (RFC 6120 §3.2.1).
func (p *Pool) connect(ctx context.Context, local, remote string, auth bool) (*conn, string, error) {
	targets, err := p.resolver.Resolve(ctx, remote)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %s: %w", errNoStream, remote, err)
	}
	if len(targets) == 0 {
		return nil, "", fmt.Errorf("%w: %s has no server", errNoStream, remote)
	}
	var errs []error
	opened := false
	for _, t := range targets {
		c, method, streamed, err := p.try(ctx, t, local, remote, auth)
		if err == nil {
			return c, method, nil
		}
		opened = opened || streamed
		errs = append(errs, fmt.Errorf("%s: %w", t, err))
		if ctx.Err() != nil {
			break
		}
	}
	err = errors.Join(errs...)
	if !opened {
		err = fmt.Errorf("%w: %w", errNoStream, err)
	}
	return nil, "", err
}

// try negotiates a stream on one target. streamed reports whether the
// peer answered with a stream header.
func (p *Pool) try(ctx context.Context, t Target, local, remote string, auth bool) (c *conn, method string, streamed bool, err error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, "", false, err
	}
	// A small kernel send buffer (limits.socket_send_buffer): Linux would
	// otherwise grow it to 4 MiB for a peer that stops reading; stanzas
	// there count as written, no write blocks, so the write timeout never
	// drops the stream, queue_bytes never fills, and nothing comes back to
	// the senders. Small, the backlog stays in the queue, whose bounds
	// answer the senders, and a write blocked past the write timeout drops
	// the stream and bounces what it held.
	if tc, ok := nc.(*net.TCPConn); ok && p.limits.SendBuffer > 0 {
		_ = tc.SetWriteBuffer(p.limits.SendBuffer)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Now()) })
	defer stop()
	tlsOpts := TLSOptions{Certificate: p.cert, RequireValid: p.cfg.RequireValidCertificates}
	if t.DirectTLS {
		tlsOpts.DirectTLS = true
		tc := tls.Client(nc, p.verifier.OutboundConfig(remote, tlsOpts))
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, "", false, fmt.Errorf("direct TLS: %w", err)
		}
		nc = tc
	}
	c = newConn(nc, p.limits)
	fail := func(se *stream.Error, err error) (*conn, string, bool, error) {
		c.close(se)
		return nil, "", streamed, err
	}
	f, err := p.open(c, local, remote)
	if err != nil {
		return fail(nil, err)
	}
	streamed = true
	if !c.tls {
		switch {
		case f.starttls:
			if err := c.write([]byte("<starttls xmlns='" + nsTLS + "'/>")); err != nil {
				return fail(nil, err)
			}
			el, err := c.dec.Next()
			if err != nil {
				return fail(nil, err)
			}
			if el.Start.Name != (xml.Name{Space: nsTLS, Local: "proceed"}) {
				return fail(nil, fmt.Errorf("STARTTLS refused (<%s/>)", el.Start.Name.Local))
			}
			tc := tls.Client(c.nc, p.verifier.OutboundConfig(remote, tlsOpts))
			if err := tc.HandshakeContext(ctx); err != nil {
				_ = c.nc.Close()
				return nil, "", true, fmt.Errorf("STARTTLS: %w", err)
			}
			c.upgrade(tc)
			if f, err = p.open(c, local, remote); err != nil {
				return fail(nil, err)
			}
		case p.cfg.RequireTLS:
			se := wire.StreamError(stream.PolicyViolation, "TLS is required")
			return fail(&se, errors.New("the peer offers no STARTTLS, and TLS is required"))
		}
	}
	if !auth {
		_ = nc.SetDeadline(time.Time{})
		return c, "", true, nil
	}
	if f.external && c.tls {
		ok, err := p.external(c, local, remote)
		p.m.authenticated(remote, dirOut, methodExternal, ok && err == nil)
		if err != nil {
			return fail(nil, err)
		}
		if ok {
			_ = c.nc.SetDeadline(time.Time{})
			return c, "external", true, nil
		}
	}
	if p.cfg.RequireValidCertificates {
		se := wire.StreamError(stream.PolicyViolation, "only SASL EXTERNAL is accepted")
		return fail(&se, errors.New("SASL EXTERNAL is not available, and dialback is off"))
	}
	err = p.dialback(c, local, remote)
	p.m.authenticated(remote, dirOut, methodDialback, err == nil)
	if err != nil {
		return fail(nil, err)
	}
	_ = c.nc.SetDeadline(time.Time{})
	return c, "dialback", true, nil
}

// open sends our header, reads the peer's and its features.
func (p *Pool) open(c *conn, local, remote string) (features, error) {
	if err := c.write(header(local, remote, "")); err != nil {
		return features{}, err
	}
	h, err := c.readHeader()
	if err != nil {
		return features{}, err
	}
	if h.id == "" {
		return features{}, errors.New("the peer's stream header has no id")
	}
	if h.from != "" && h.from != remote {
		return features{}, fmt.Errorf("the peer's stream is from %q", h.from)
	}
	c.id = h.id
	el, err := c.dec.Next()
	if err != nil {
		return features{}, err
	}
	if cond, ok := isStreamError(el); ok {
		return features{}, fmt.Errorf("stream error %s", cond)
	}
	return parseFeatures(el)
}

// external authenticates with SASL EXTERNAL (XEP-0178 §3): false when the
// peer answers failure.
func (p *Pool) external(c *conn, local, remote string) (bool, error) {
	authzid := base64.StdEncoding.EncodeToString([]byte(local))
	if err := c.write([]byte("<auth xmlns='" + nsSASL + "' mechanism='EXTERNAL'>" + authzid + "</auth>")); err != nil {
		return false, err
	}
	el, err := c.dec.Next()
	if err != nil {
		return false, err
	}
	switch el.Start.Name {
	case xml.Name{Space: nsSASL, Local: "success"}:
	case xml.Name{Space: nsSASL, Local: "failure"}:
		return false, nil
	default:
		return false, fmt.Errorf("SASL EXTERNAL answered with <%s/>", el.Start.Name.Local)
	}
	c.dec.Restart()
	if _, err := p.open(c, local, remote); err != nil {
		return false, err
	}
	return true, nil
}

// dialback asks the peer to verify our key (XEP-0220 §2.1) and waits for
// its verdict.
func (p *Pool) dialback(c *conn, local, remote string) error {
	b, err := Dialback{Kind: DialbackResult, From: local, To: remote, Key: p.keyer.Key(remote, local, c.id)}.Marshal(false)
	if err != nil {
		return err
	}
	if err := c.write(b); err != nil {
		return err
	}
	for range 16 {
		el, err := c.dec.Next()
		if err != nil {
			return err
		}
		if cond, ok := isStreamError(el); ok {
			return fmt.Errorf("stream error %s during dialback", cond)
		}
		if DialbackKindOf(el.Start.Name) != DialbackResult {
			continue
		}
		d, err := ParseDialback(el)
		if err != nil || d.From != remote || d.To != local {
			continue
		}
		switch d.Type {
		case DialbackValid:
			return nil
		case DialbackInvalid:
			return errors.New("dialback: the peer found our key invalid")
		case DialbackError:
			cond := "undefined-condition"
			if d.Error != nil {
				cond = string(d.Error.Condition)
			}
			return fmt.Errorf("dialback: error %s", cond)
		}
	}
	return errors.New("dialback: no verdict")
}

// verify asks remote's authoritative server whether key is its key for
// the stream id it opened to local (XEP-0220 §2.1.3), over a connection
// of its own, closed after the answer, as ejabberd does.
func (p *Pool) verify(ctx context.Context, local, remote, id, key string) (bool, error) {
	c, _, err := p.connect(ctx, local, remote, false)
	if err != nil {
		return false, err
	}
	defer c.close(nil)
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	b, err := Dialback{Kind: DialbackVerify, From: local, To: remote, ID: id, Key: key}.Marshal(false)
	if err != nil {
		return false, err
	}
	if err := c.write(b); err != nil {
		return false, err
	}
	for range 16 {
		el, err := c.dec.Next()
		if err != nil {
			return false, err
		}
		if cond, ok := isStreamError(el); ok {
			return false, fmt.Errorf("stream error %s", cond)
		}
		if DialbackKindOf(el.Start.Name) != DialbackVerify {
			continue
		}
		d, err := ParseDialback(el)
		if err != nil || d.ID != id || d.From != remote || d.To != local {
			continue
		}
		return d.Type == DialbackValid, nil
	}
	return false, errors.New("no answer to db:verify")
}
