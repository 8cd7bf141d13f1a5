package router

import (
	"slices"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire"
)

// sessions is the registry of bound resources, by account and resource.
type sessions struct {
	mu         sync.RWMutex
	byUser     map[string]map[string]*session
	bound      int // sessions in byUser, kept so that counting is O(1)
	maxPerUser func() int
}

// bind registers c under full. A session already bound to the same resource
// is closed with a conflict stream error (RFC 6120 §7.7.2.2, the "override"
// policy); an account at its session limit gets resource-constraint.
func (s *sessions) bind(c *session, full jid.JID) error {
	user, res := full.Localpart(), full.Resourcepart()
	s.mu.Lock()
	rs := s.byUser[user]
	if rs == nil {
		rs = make(map[string]*session)
		s.byUser[user] = rs
	}
	old := rs[res]
	if old == nil && len(rs) >= s.maxPerUser() {
		s.mu.Unlock()
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "too many sessions for this account"}}
	}
	rs[res] = c
	if old == nil {
		s.bound++
	}
	s.mu.Unlock()
	if old != nil {
		old.conn.Unbind()
		old.conn.Close(wire.StreamError(stream.Conflict, "replaced by a new session with the same resource"))
	}
	return nil
}

// unbind removes c if it is still the session bound to its JID.
func (s *sessions) unbind(c *session) {
	user, res := c.addr.Localpart(), c.addr.Resourcepart()
	s.mu.Lock()
	defer s.mu.Unlock()
	if rs := s.byUser[user]; rs != nil && rs[res] == c {
		delete(rs, res)
		s.bound--
		if len(rs) == 0 {
			delete(s.byUser, user)
		}
	}
}

// resource returns the session bound to a full JID.
func (s *sessions) resource(user, res string) *session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byUser[user][res]
}

// of returns the sessions of an account, ordered by resource.
func (s *sessions) of(user string) []*session {
	s.mu.RLock()
	rs := s.byUser[user]
	out := make([]*session, 0, len(rs))
	for _, c := range rs {
		out = append(out, c)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b *session) int {
		if a.addr.Resourcepart() < b.addr.Resourcepart() {
			return -1
		}
		return 1
	})
	return out
}

// all returns every bound session.
func (s *sessions) all() []*session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []*session
	for _, rs := range s.byUser {
		for _, c := range rs {
			out = append(out, c)
		}
	}
	return out
}

// count returns the number of bound sessions and of the accounts they
// belong to.
func (s *sessions) count() (sessions, users int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.bound, len(s.byUser)
}
