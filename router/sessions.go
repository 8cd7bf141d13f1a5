package router

import (
	"slices"
	"strings"
	"sync"

	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"github.com/adhocd/adhocd/wire"
)

// sessions is the registry of bound resources, by account and resource:
// the sessions bound here, and with a cluster those of the other replicas
// (of and resource add them from the directory; cluster.go).
type sessions struct {
	mu         sync.RWMutex
	byUser     map[string]map[string]*session
	bound      int // sessions in byUser, kept so that counting is O(1)
	maxPerUser func() int
	// remoteOf returns an account's sessions on other replicas; nil
	// without a cluster.
	remoteOf func(user string) []*session
}

// errTooManySessions refuses a bind past limits.max_sessions_per_account.
var errTooManySessions = stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
	Text: map[string]string{"en": "too many sessions for this account"}}

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
		return errTooManySessions
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

// resource returns the session bound to a full JID, here or on another
// replica.
func (s *sessions) resource(user, res string) *session {
	if c := s.local(user, res); c != nil || s.remoteOf == nil {
		return c
	}
	for _, c := range s.remoteOf(user) {
		if c.addr.Resourcepart() == res {
			return c
		}
	}
	return nil
}

// local returns the session bound here to a full JID.
func (s *sessions) local(user, res string) *session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.byUser[user][res]
}

// of returns the sessions of an account, here and on other replicas,
// ordered by resource.
func (s *sessions) of(user string) []*session {
	out := s.localOf(user)
	if s.remoteOf != nil {
		out = append(out, s.remoteOf(user)...)
	}
	slices.SortFunc(out, func(a, b *session) int { return strings.Compare(a.addr.Resourcepart(), b.addr.Resourcepart()) })
	return out
}

// localOf returns the sessions of an account bound here, in no order.
func (s *sessions) localOf(user string) []*session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rs := s.byUser[user]
	out := make([]*session, 0, len(rs))
	for _, c := range rs {
		out = append(out, c)
	}
	return out
}

// all returns every session bound here.
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
