package router

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/wire"
)

// IQ requests the server sends to local clients (modules.IQRequester): a
// module asks a client something (XEP-0115 entity capabilities: the
// features behind a caps hash, for PEP notifications) and waits for the
// answer, which the client addresses to the server JID. Each request has an
// id of its own, unguessable, and an answer counts only from the full JID
// the request went to; answers nobody waits for are dropped, as before.

// requests are the IQs waiting for an answer, by id.
type requests struct {
	mu      sync.Mutex
	waiting map[string]*request
}

type request struct {
	to     string // the full JID asked
	answer chan *wire.Element
}

// maxPendingRequests bounds the IQs waiting at once; past it a request
// fails at once rather than growing the table.
const maxPendingRequests = 4096

// Request implements modules.IQRequester: it sends an IQ of type typ
// carrying payload from the server JID to the local full JID to, and
// returns the answer (a result or an error IQ) or ctx's error.
func (s *Router) Request(ctx context.Context, to jid.JID, typ stanza.IQType, payload xml.TokenReader) (*wire.Element, error) {
	// A session of this replica: the answer comes back here.
	dst := s.sessions.local(to.Localpart(), to.Resourcepart())
	if dst == nil || !s.isLocal(to) {
		return nil, stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable}
	}
	inner, err := collect(payload)
	if err != nil {
		return nil, fmt.Errorf("router: request: %w", err)
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := "adhocd-" + hex.EncodeToString(b[:])
	r := &request{to: dst.addrName, answer: make(chan *wire.Element, 1)}
	s.reqs.mu.Lock()
	if len(s.reqs.waiting) >= maxPendingRequests {
		s.reqs.mu.Unlock()
		return nil, stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint}
	}
	if s.reqs.waiting == nil {
		s.reqs.waiting = make(map[string]*request)
	}
	s.reqs.waiting[id] = r
	s.reqs.mu.Unlock()
	defer func() {
		s.reqs.mu.Lock()
		delete(s.reqs.waiting, id)
		s.reqs.mu.Unlock()
	}()

	el := &wire.Element{Start: xml.StartElement{Name: xml.Name{Space: stanza.NSClient, Local: "iq"}}, Inner: inner}
	el.SetAttr("id", id)
	el.SetAttr("type", string(typ))
	el.SetAttr("from", s.domainName)
	el.SetAttr("to", dst.addrName)
	s.deliver(dst, el)
	select {
	case a := <-r.answer:
		return a, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// iqResponse takes a result or error a session sent to the server JID: the
// answer to one of the server's requests, when its id and sender match.
func (s *Router) iqResponse(c *session, el *wire.Element) {
	id := el.Attr("id")
	s.reqs.mu.Lock()
	r := s.reqs.waiting[id]
	if r != nil && r.to == c.addrName {
		delete(s.reqs.waiting, id)
	} else {
		r = nil
	}
	s.reqs.mu.Unlock()
	if r != nil {
		r.answer <- el
	}
}
