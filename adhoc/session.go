package adhoc

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// Errors returned by a Store.
var (
	// ErrNoSession: the id was never issued here (or is long forgotten).
	ErrNoSession = errors.New("adhoc: no such session")
	// ErrSessionEnded: the session completed, was canceled, timed out or was
	// evicted, recently enough to be remembered.
	ErrSessionEnded = errors.New("adhoc: session ended")
	// ErrTooManySessions: the owner already holds its maximum of sessions.
	ErrTooManySessions = errors.New("adhoc: too many sessions for this requester")
	// ErrSessionChanged: a store shared by several servers found the
	// session changed by another one since it was read (Session.Revision).
	ErrSessionChanged = errors.New("adhoc: the session changed meanwhile")
)

// Session is the state of one command execution between stages. It is plain
// data so that a Store may keep it anywhere.
type Session struct {
	ID string `json:"id"`
	// Node and Responder name the command; Requester is the full JID the
	// session is bound to, Owner its bare JID (for the per-user cap).
	Node      string `json:"node"`
	Responder string `json:"responder"`
	Requester string `json:"requester"`
	Owner     string `json:"owner"`
	Lang      string `json:"lang,omitempty"`
	// Stage is the index of the stage whose form the requester has now.
	Stage int `json:"stage"`
	// Values holds the accepted submission of each stage, by index.
	Values  []Values  `json:"values"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Expires is when the session times out unless used again.
	Expires time.Time `json:"expires"`
	// Revision is the version of the session a store read, for a store
	// that several servers share and that updates optimistically: Put
	// refuses with ErrSessionChanged a session another server changed
	// since. 0 for a session never stored; stores in one process ignore it.
	Revision int64 `json:"-"`
}

// merged returns the values of every stage up to (not including) stage n;
// later stages win.
func (s *Session) merged(n int) Values {
	out := Values{}
	for i := 0; i < n && i < len(s.Values); i++ {
		for k, v := range s.Values[i] {
			out[k] = v
		}
	}
	return out
}

// Store keeps command sessions; it is the equivalent of slixmpp's
// set_backend. Implementations must be safe for concurrent use.
type Store interface {
	// Get returns a live session, ErrSessionEnded for an id that ended
	// recently, or ErrNoSession.
	Get(ctx context.Context, id string) (*Session, error)
	// Put stores a new or changed session and renews its lifetime. For a new
	// session it returns ErrTooManySessions when its owner is at the limit.
	Put(ctx context.Context, s *Session) error
	// End removes a session and remembers its id as ended.
	End(ctx context.Context, id string) error
}

// StoreStats counts what a store did, for the metrics.
type StoreStats struct {
	Hits, Misses, Evictions, Expirations, Refusals uint64
	// Held is the number of live sessions.
	Held int
}

// StatsReporter is implemented by stores that count their work.
type StatsReporter interface{ Stats() StoreStats }

// MemoryStore is the default Store: an LRU of at most MaxSessions sessions
// with a sliding TTL and a cap per owner, which remembers ended ids for a
// TTL so that they answer session-expired.
type MemoryStore struct {
	ttl        time.Duration
	maxPerUser int
	now        func() time.Time

	live  *expirable.LRU[string, *entry]
	ended *expirable.LRU[string, struct{}]

	ownerMu sync.Mutex
	owners  map[string]int

	hits, misses, evictions, expirations, refusals atomic.Uint64
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store.
func NewMemoryStore(maxSessions int, ttl time.Duration, maxPerUser int) *MemoryStore {
	m := &MemoryStore{ttl: ttl, maxPerUser: maxPerUser, now: time.Now, owners: map[string]int{}}
	// The LRU's own TTL only reclaims memory; expiry is decided by
	// Session.Expires, checked on Get, so that an id is never reported
	// unknown in the moment between expiring and being reaped.
	m.live = expirable.NewLRU(maxSessions, m.onEvict, ttl+ttl/10+time.Second)
	m.ended = expirable.NewLRU[string, struct{}](maxSessions, nil, ttl)
	return m
}

// TTL returns how long a session lives after its last Put, so that a store
// layered on this one (a persistent tier) expires what it keeps alike.
func (m *MemoryStore) TTL() time.Duration { return m.ttl }

// entry is what the LRU holds: the session, never changed once stored, and
// whether it was ended on purpose (read by onEvict on the reaper goroutine).
type entry struct {
	s     Session
	ended atomic.Bool
}

// onEvict runs for every session leaving the LRU: ended explicitly, expired
// or pushed out by a newer one. It must not call back into m.live.
func (m *MemoryStore) onEvict(id string, e *entry) {
	m.ownerMu.Lock()
	if m.owners[e.s.Owner]--; m.owners[e.s.Owner] <= 0 {
		delete(m.owners, e.s.Owner)
	}
	m.ownerMu.Unlock()
	m.ended.Add(id, struct{}{})
	if e.ended.Load() {
		return
	}
	if m.now().After(e.s.Expires) {
		m.expirations.Add(1)
	} else {
		m.evictions.Add(1)
	}
}

// Get implements Store.
func (m *MemoryStore) Get(_ context.Context, id string) (*Session, error) {
	e, ok := m.live.Peek(id)
	if ok && m.now().After(e.s.Expires) {
		m.live.Remove(id)
		ok = false
	}
	if !ok {
		m.misses.Add(1)
		if _, gone := m.ended.Get(id); gone {
			return nil, ErrSessionEnded
		}
		return nil, ErrNoSession
	}
	m.hits.Add(1)
	cp := e.s
	cp.Values = slices.Clone(cp.Values)
	return &cp, nil
}

// Put implements Store.
func (m *MemoryStore) Put(_ context.Context, s *Session) error {
	cp := *s
	cp.Values = slices.Clone(s.Values)
	cp.Expires = m.now().Add(m.ttl)
	if !m.live.Contains(s.ID) {
		m.ownerMu.Lock()
		if m.owners[s.Owner] >= m.maxPerUser {
			m.ownerMu.Unlock()
			m.refusals.Add(1)
			return ErrTooManySessions
		}
		m.owners[s.Owner]++
		m.ownerMu.Unlock()
	}
	m.live.Add(s.ID, &entry{s: cp})
	return nil
}

// End implements Store.
func (m *MemoryStore) End(_ context.Context, id string) error {
	if e, ok := m.live.Peek(id); ok {
		e.ended.Store(true) // onEvict counts no expiry or eviction
		m.live.Remove(id)
		return nil
	}
	m.ended.Add(id, struct{}{})
	return nil
}

// Stats implements StatsReporter.
func (m *MemoryStore) Stats() StoreStats {
	return StoreStats{
		Hits: m.hits.Load(), Misses: m.misses.Load(), Evictions: m.evictions.Load(),
		Expirations: m.expirations.Load(), Refusals: m.refusals.Load(), Held: m.live.Len(),
	}
}

// OwnerEnder is implemented by stores that can end every session of one
// owner (a bare JID), as when its account is deleted: an account made again
// under the same name must not continue them.
type OwnerEnder interface {
	// EndOwner ends every live session of owner, as End does.
	EndOwner(ctx context.Context, owner string) error
}

var _ OwnerEnder = (*MemoryStore)(nil)

// EndOwner implements OwnerEnder. It walks the live sessions, which an
// account deletion, being rare, can afford.
func (m *MemoryStore) EndOwner(ctx context.Context, owner string) error {
	for _, id := range m.live.Keys() {
		if e, ok := m.live.Peek(id); ok && e.s.Owner == owner {
			_ = m.End(ctx, id)
		}
	}
	return nil
}
