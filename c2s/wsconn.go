package c2s

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsConn presents a WebSocket as the net.Conn a c2s stream reads and
// writes: each Write is one text message, Read returns the messages' bytes
// in order. A pump goroutine reads whole messages (at most one waits in
// memory beside the one being parsed), so that a read deadline ends a Read
// with a timeout and leaves the WebSocket open for the stream error; the
// library's own net.Conn closes the connection on a deadline instead.
type wsConn struct {
	c      *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
	remote net.Addr
	msgs   chan []byte
	cur    []byte // the rest of the message being read

	mu            sync.Mutex
	readDeadline  time.Time
	writeDeadline time.Time
	err           error // why the pump stopped
	closeOnce     sync.Once
}

func newWSConn(c *websocket.Conn, remoteAddr string) *wsConn {
	ctx, cancel := context.WithCancel(context.Background())
	w := &wsConn{c: c, ctx: ctx, cancel: cancel, msgs: make(chan []byte, 1), remote: wsAddr(remoteAddr)}
	go w.pump()
	return w
}

func (w *wsConn) pump() {
	defer close(w.msgs)
	for {
		typ, data, err := w.c.Read(w.ctx)
		if err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		if typ != websocket.MessageText {
			// RFC 7395 §3.3.3: XMPP is sent in text messages.
			_ = w.c.Close(websocket.StatusUnsupportedData, "XMPP over WebSocket uses text messages")
			w.mu.Lock()
			w.err = io.EOF
			w.mu.Unlock()
			return
		}
		select {
		case w.msgs <- data:
		case <-w.ctx.Done():
			return
		}
	}
}

// errDeadline is the timeout a Read or Write past its deadline returns.
var errDeadline = &net.OpError{Op: "read", Net: "websocket", Err: errTimeout{}}

type errTimeout struct{}

func (errTimeout) Error() string   { return "i/o timeout" }
func (errTimeout) Timeout() bool   { return true }
func (errTimeout) Temporary() bool { return true }

func (w *wsConn) Read(p []byte) (int, error) {
	if len(w.cur) == 0 {
		m, err := w.nextMessage()
		if err != nil {
			return 0, err
		}
		w.cur = m
	}
	n := copy(p, w.cur)
	w.cur = w.cur[n:]
	return n, nil
}

// nextMessage waits for the next message, until the read deadline.
func (w *wsConn) nextMessage() ([]byte, error) {
	w.mu.Lock()
	d := w.readDeadline
	w.mu.Unlock()
	var timeout <-chan time.Time
	if !d.IsZero() {
		left := time.Until(d)
		if left <= 0 {
			return nil, errDeadline
		}
		t := time.NewTimer(left)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case m, ok := <-w.msgs:
		if !ok {
			return nil, w.readErr()
		}
		return m, nil
	case <-timeout:
		return nil, errDeadline
	}
}

// readErr maps why the pump stopped to what a net.Conn reader sees: io.EOF
// for a closed WebSocket, net.ErrClosed for one closed here.
func (w *wsConn) readErr() error {
	w.mu.Lock()
	err := w.err
	w.mu.Unlock()
	switch {
	case err == nil, errors.Is(err, io.EOF), websocket.CloseStatus(err) != -1:
		return io.EOF
	case w.ctx.Err() != nil:
		return net.ErrClosed
	}
	return err
}

func (w *wsConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	d := w.writeDeadline
	w.mu.Unlock()
	ctx := w.ctx
	if !d.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d)
		defer cancel()
	}
	if err := w.c.Write(ctx, websocket.MessageText, p); err != nil {
		return 0, fmt.Errorf("websocket write: %w", err)
	}
	return len(p), nil
}

// Close closes the WebSocket with a normal closure; the closing handshake
// runs in the background (bounded by the library), so that Close never
// blocks the stream's writer.
func (w *wsConn) Close() error {
	w.closeOnce.Do(func() {
		go func() {
			_ = w.c.Close(websocket.StatusNormalClosure, "")
			w.cancel()
		}()
	})
	return nil
}

func (w *wsConn) LocalAddr() net.Addr  { return wsAddr("") }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }

func (w *wsConn) SetDeadline(t time.Time) error {
	_ = w.SetReadDeadline(t)
	return w.SetWriteDeadline(t)
}

func (w *wsConn) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	w.readDeadline = t
	w.mu.Unlock()
	return nil
}

func (w *wsConn) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	w.writeDeadline = t
	w.mu.Unlock()
	return nil
}

// wsAddr is the client's address as the HTTP request gave it (host:port).
type wsAddr string

func (a wsAddr) Network() string { return "websocket" }
func (a wsAddr) String() string  { return string(a) }

var _ net.Conn = (*wsConn)(nil)
