package main

import (
	"bufio"
	"bytes"
	"context"
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

// chatBody is the body of every chat message: a line of the length people
// type in a chat.
const chatBody = "Hello, this is a chat message of the length people type, more or less."

// The kinds of chat message, the first byte of their id: an original
// ("c<seq>.<sent>"), the partner's answer to it ("e<seq>.<sent>"), and the
// last message of a client ("end"), after which it sends nothing more. sent
// is the time of sending in nanoseconds since the run's epoch (monotonic:
// both ends of a pair are in this process).
const (
	kindOriginal = 'c'
	kindEcho     = 'e'
	kindEnd      = 'x'
)

// chatIn is one message read by nextMessage.
type chatIn struct {
	kind   byte
	seq    int64
	sentAt time.Duration // since the epoch
	cond   string        // the condition of a type='error' message
}

// chatResult is what one client of a pair measured.
type chatResult struct {
	tally                // delivery latency of each message received; flows: its originals answered
	sent, received int64 // chat messages, originals and answers, not the end marker
}

// loadChat runs the chat workload: the clients log in, client 2k and
// client 2k+1 are partners, and each sends chat messages to its partner's
// full JID, one at a time, the next when the partner has answered the last
// (answering the partner's own messages meanwhile), until --count or
// --duration. Each receiver measures the delivery latency of the messages
// it receives, from the time of sending carried in their id. With several
// servers (--server) client i connects to o.server(i): partners are on
// different servers, and each message crosses from one to the other.
func loadChat(ctx context.Context, o options, stderr io.Writer) (*report, error) {
	if o.clients < 2 || o.clients%2 != 0 {
		return nil, fmt.Errorf("--chat: --clients must be an even number of at least 2, not %d", o.clients)
	}
	results := make([]chatResult, o.clients)
	clients := make([]*client, o.clients)
	var wg sync.WaitGroup
	for i := range o.clients {
		results[i].errors = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dial(ctx, o, i)
			if err == nil {
				// Available, as a chat client is.
				err = c.send(`<presence/>`)
				if err != nil {
					c.close()
				}
			}
			if err != nil {
				results[i].login = err
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	// --duration counts from the end of the logins.
	epoch := time.Now()
	if o.count == 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	var delivered atomic.Int64
	for i := 0; i < o.clients; i += 2 {
		a, b := clients[i], clients[i+1]
		if a == nil || b == nil {
			continue // a pair with a failed login does not run
		}
		wg.Add(2)
		go func() { defer wg.Done(); a.chat(ctx, o, b.jid, epoch, &results[i], &delivered) }()
		go func() { defer wg.Done(); b.chat(ctx, o, a.jid, epoch, &results[i+1], &delivered) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	progress(stderr, "messages", &delivered, done)
	elapsed := time.Since(epoch).Seconds()
	rep := &report{Workload: "chat", Clients: o.clients, Servers: len(o.servers), Pairs: o.clients / 2, Node: "chat to the partner's full JID",
		Seconds: elapsed, Errors: map[string]int{}}
	var all []time.Duration
	for _, r := range results {
		all = rep.add(r.tally, all, stderr)
		rep.Sent += r.sent
		rep.Delivered += r.received
	}
	if rep.LoginErrors == o.clients {
		return nil, errors.New("no client could log in")
	}
	rep.MsgPerSec = float64(rep.Delivered) / elapsed
	rep.finish(all, elapsed)
	return rep, nil
}

// chat is one end of a pair: it sends its originals to partner one at a
// time and answers each of the partner's, until it has sent its last and
// the partner has said it sent its own.
func (c *client) chat(ctx context.Context, o options, partner string, epoch time.Time, res *chatResult, delivered *atomic.Int64) {
	var to strings.Builder
	xmlEscape(&to, partner)
	c.to = to.String()
	var (
		seq                 int64 // originals sent
		waiting             bool  // the last original awaits its answer
		ended, partnerEnded bool
		renewed             time.Duration // when the deadline was last moved
		in                  chatIn
	)
	keepAlive := func(now time.Duration) {
		if now-renewed > time.Second/4 {
			renewed = now
			_ = c.conn.SetDeadline(epoch.Add(now + o.timeout))
		}
	}
	// next sends the next original, or the end marker when the run is over.
	next := func() error {
		if ctx.Err() != nil || (o.count > 0 && seq >= int64(o.count)) {
			ended = true
			return c.sendChat(kindEnd, 0, epoch)
		}
		seq++
		waiting = true
		res.sent++
		return c.sendChat(kindOriginal, seq, epoch)
	}
	keepAlive(time.Since(epoch))
	if err := next(); err != nil {
		res.errors["connection"]++
		return
	}
	for !ended || !partnerEnded {
		if err := c.nextMessage(&in); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				res.errors["timeout"]++
			} else {
				res.errors["connection"]++
			}
			return
		}
		now := time.Since(epoch)
		keepAlive(now)
		var err error
		switch {
		case in.cond != "":
			// A message of ours bounced; an original that did is over.
			res.errors[in.cond]++
			if in.kind == kindOriginal && waiting && in.seq == seq {
				waiting = false
				err = next()
			}
		case in.kind == kindOriginal:
			res.received++
			res.lat = append(res.lat, now-in.sentAt)
			delivered.Add(1)
			res.sent++
			err = c.sendChat(kindEcho, in.seq, epoch)
		case in.kind == kindEcho:
			res.received++
			res.lat = append(res.lat, now-in.sentAt)
			delivered.Add(1)
			if !waiting || in.seq != seq {
				res.errors["unexpected-answer"]++
				continue
			}
			waiting = false
			res.flows++
			err = next()
		case in.kind == kindEnd:
			partnerEnded = true
		}
		if err != nil {
			res.errors["connection"]++
			return
		}
	}
}

// sendChat writes one chat message to the partner, built in the client's
// buffer, with its kind, sequence number and the time of sending in its id.
func (c *client) sendChat(kind byte, seq int64, epoch time.Time) error {
	b := append(c.buf[:0], "<message type='chat' to='"...)
	b = append(b, c.to...)
	b = append(b, "' id='"...)
	if kind == kindEnd {
		b = append(b, "end'><body>end</body></message>"...)
	} else {
		b = append(b, kind)
		b = strconv.AppendInt(b, seq, 10)
		b = append(b, '.')
		b = strconv.AppendInt(b, int64(time.Since(epoch)), 10)
		b = append(b, "'><body>"+chatBody+"</body></message>"...)
	}
	c.buf = b
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return c.w.Flush()
}

// nextMessage reads top-level elements until a message, whose id (and
// error condition, for a bounce) it puts into in; anything else (presence,
// IQs) is skipped. It reads the stream with nextTag rather than
// encoding/xml, which would cost the load tool more than the server spends
// routing the message.
func (c *client) nextMessage(in *chatIn) error {
	for {
		t, err := c.nextTag()
		if err != nil {
			return err
		}
		kind, name := tagKind(t)
		switch {
		case kind == tagEnd && localName(name) == "stream":
			return errors.New("the server closed the stream")
		case kind != tagStart && kind != tagEmpty:
			continue
		case string(name) == "stream:error":
			cond, err := c.condition(false, kind == tagEmpty)
			if err != nil {
				return err
			}
			return fmt.Errorf("stream error: %s", cond)
		case string(name) != "message":
			if kind == tagStart {
				if err := c.skipElement(); err != nil {
					return err
				}
			}
			continue
		}
		*in = chatIn{}
		parseChatID(attrValue(t, "id"), in)
		if string(attrValue(t, "type")) == "error" {
			in.cond, err = c.condition(true, kind == tagEmpty)
		} else if kind == tagStart {
			err = c.skipElement()
		}
		return err
	}
}

// The kinds of markup nextTag returns.
const (
	tagStart = iota // <a ...>
	tagEmpty        // <a .../>
	tagEnd          // </a>
	tagOther        // <?...?>, <!--...-->, <![CDATA[...]]>
)

// nextTag skips text up to the next '<' and returns the markup that follows,
// without its '<' and '>'; the slice is valid until the next call. A '>'
// within a quoted attribute value, a comment or a CDATA section does not end
// it.
func (c *client) nextTag() ([]byte, error) {
	for {
		_, err := c.r.ReadSlice('<')
		if err == nil {
			break
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
	}
	c.tag = c.tag[:0]
	var quote byte
	for {
		chunk, err := c.r.ReadSlice('>')
		if err != nil && err != bufio.ErrBufferFull {
			return nil, err
		}
		c.tag = append(c.tag, chunk...)
		if len(c.tag) > 0 && c.tag[0] != '!' {
			for _, b := range chunk {
				switch {
				case quote == 0 && (b == '\'' || b == '"'):
					quote = b
				case b == quote:
					quote = 0
				}
			}
		}
		if err != nil || quote != 0 {
			continue // the tag goes on
		}
		t := c.tag[:len(c.tag)-1]
		if (bytes.HasPrefix(t, []byte("!--")) && !bytes.HasSuffix(t, []byte("--"))) ||
			(bytes.HasPrefix(t, []byte("![CDATA[")) && !bytes.HasSuffix(t, []byte("]]"))) {
			continue
		}
		return t, nil
	}
}

// tagKind classifies markup from nextTag and returns its element name
// (with its prefix) for a start, empty or end tag.
func tagKind(t []byte) (kind int, name []byte) {
	if len(t) == 0 || t[0] == '?' || t[0] == '!' {
		return tagOther, nil
	}
	kind = tagStart
	if t[0] == '/' {
		kind, t = tagEnd, t[1:]
	} else if t[len(t)-1] == '/' {
		kind = tagEmpty
	}
	end := 0
	for end < len(t) && !isSpace(t[end]) && t[end] != '/' {
		end++
	}
	return kind, t[:end]
}

// localName is name without its prefix.
func localName(name []byte) string {
	if i := bytes.IndexByte(name, ':'); i >= 0 {
		name = name[i+1:]
	}
	return string(name)
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' || b == '\r' }

// attrValue is the raw value of the attribute key in a start tag from
// nextTag, or nil.
func attrValue(t []byte, key string) []byte {
	i := 0
	for i < len(t) && !isSpace(t[i]) && t[i] != '/' {
		i++ // the element name
	}
	for i < len(t) {
		for i < len(t) && isSpace(t[i]) {
			i++
		}
		eq := bytes.IndexByte(t[i:], '=')
		if eq < 0 {
			return nil
		}
		name := bytes.TrimRight(t[i:i+eq], " \t\r\n")
		i += eq + 1
		for i < len(t) && isSpace(t[i]) {
			i++
		}
		if i >= len(t) || (t[i] != '\'' && t[i] != '"') {
			return nil
		}
		end := bytes.IndexByte(t[i+1:], t[i])
		if end < 0 {
			return nil
		}
		value := t[i+1 : i+1+end]
		if string(name) == key {
			return value
		}
		i += end + 2
	}
	return nil
}

// skipElement reads up to the end of the element whose start tag was just
// read.
func (c *client) skipElement() error {
	for depth := 1; depth > 0; {
		t, err := c.nextTag()
		if err != nil {
			return err
		}
		switch kind, _ := tagKind(t); kind {
		case tagStart:
			depth++
		case tagEnd:
			depth--
		}
	}
	return nil
}

// condition reads the rest of the error element whose start tag was just
// read (empty: it has no content) and returns its condition: for a stanza
// (stanza true), the condition of its <error/> child; for a stream error,
// its own first child other than <text/>.
func (c *client) condition(stanza, empty bool) (string, error) {
	cond := ""
	inError := !stanza // a stream error is itself the <error/>
	condDepth := 2
	if stanza {
		condDepth = 3
	}
	for depth := 1; depth > 0 && !empty; {
		t, err := c.nextTag()
		if err != nil {
			return "", err
		}
		kind, name := tagKind(t)
		switch kind {
		case tagStart, tagEmpty:
			if kind == tagStart {
				depth++
			}
			d := depth + boolInt(kind == tagEmpty)
			switch local := localName(name); {
			case stanza && d == 2 && local == "error":
				inError = kind == tagStart
			case inError && d == condDepth && cond == "" && local != "text":
				cond = local
			}
		case tagEnd:
			if stanza && depth == 2 {
				inError = false
			}
			depth--
		}
	}
	if cond == "" {
		cond = "undefined-condition"
	}
	return cond, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// parseChatID reads the kind, sequence number and time of sending from a
// chat message's id; an id of no known form leaves kind 0.
func parseChatID(id []byte, in *chatIn) {
	if string(id) == "end" {
		in.kind = kindEnd
		return
	}
	if len(id) < 4 || (id[0] != kindOriginal && id[0] != kindEcho) {
		return
	}
	dot := bytes.IndexByte(id, '.')
	if dot < 0 {
		return
	}
	seq, ok1 := parseUint(id[1:dot])
	sent, ok2 := parseUint(id[dot+1:])
	if !ok1 || !ok2 {
		return
	}
	in.kind, in.seq, in.sentAt = id[0], seq, time.Duration(sent)
}

// parseUint parses a decimal number of at most 18 digits.
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}
