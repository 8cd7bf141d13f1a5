package postgres

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/adhocd/adhocd/adhoc"
)

// SessionStore is adhoc.Store on the adhoc_sessions table: XEP-0050
// command sessions that every replica sees, so that a client whose next
// stage reaches another replica (a reconnect, a load balancer) continues
// where it was. Nothing is held in memory: a replica that cached a session
// would answer a stage another one had moved on from.
//
// Updates are optimistic: Get returns the session with its revision, Put
// writes only if the row still has it (and is not ended), so that of two
// submissions of one stage at once through two replicas one wins and the
// other gets adhoc.ErrSessionChanged. An ended session stays as a
// tombstone until its TTL runs out, so that every replica answers its id
// as ended (session-expired) rather than unknown; expired rows are swept
// once a minute by whichever replica stores a session. The per-owner cap
// counts the owner's live rows under an advisory lock named after the
// owner; adhoc.max_sessions (the memory store's bound) does not apply:
// the cap per owner and the TTL bound the table.
type SessionStore struct {
	db       *DB
	ttl      time.Duration
	maxOwner int
	now      func() time.Time

	lastSweep                          atomic.Int64 // unix nanoseconds
	hits, misses, expirations, refused atomic.Uint64
}

// Interface guards.
var (
	_ adhoc.Store         = (*SessionStore)(nil)
	_ adhoc.OwnerEnder    = (*SessionStore)(nil)
	_ adhoc.StatsReporter = (*SessionStore)(nil)
)

// NewSessionStore returns the session store on db: sessions live ttl
// after their last change, at most maxPerOwner at once per owner (bare
// JID). It does not own db.
func NewSessionStore(db *DB, ttl time.Duration, maxPerOwner int) *SessionStore {
	return &SessionStore{db: db, ttl: ttl, maxOwner: maxPerOwner, now: time.Now}
}

// secretSetting is the settings key of the session-id secret.
const secretSetting = "adhoc_session_secret"

// Secret returns the key of session ids (adhoc.WithSecret) that every
// replica shares: the first to ask makes it, in the settings table.
func (s *SessionStore) Secret(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("adhoc sessions: secret: %w", err)
	}
	var secret []byte
	// The no-op update on a conflict returns the row that is there: with
	// DO NOTHING, a replica that raced another to the first insert saw
	// neither its own row nor the other's (the statement's snapshot
	// predates the other's commit) and started without a secret.
	err := s.db.pool.QueryRow(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING value`, secretSetting, fresh).Scan(&secret)
	if err != nil {
		return nil, fmt.Errorf("adhoc sessions: secret: %w", err)
	}
	if len(secret) != 32 {
		return nil, fmt.Errorf("adhoc sessions: secret: setting %q holds %d bytes, not 32", secretSetting, len(secret))
	}
	return secret, nil
}

// Get implements adhoc.Store.
func (s *SessionStore) Get(ctx context.Context, id string) (*adhoc.Session, error) {
	var data []byte
	var rev int64
	var ended bool
	var expires time.Time
	err := s.db.pool.QueryRow(ctx, `SELECT data, revision, ended, expires FROM adhoc_sessions WHERE id = $1`, id).
		Scan(&data, &rev, &ended, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		s.misses.Add(1)
		return nil, adhoc.ErrNoSession
	case err != nil:
		return nil, fmt.Errorf("adhoc sessions: load %s: %w", id, err)
	case ended:
		s.misses.Add(1)
		return nil, adhoc.ErrSessionEnded
	case s.now().After(expires):
		s.misses.Add(1)
		s.expirations.Add(1)
		return nil, adhoc.ErrSessionEnded
	}
	var sess adhoc.Session
	if err := json.Unmarshal(data, &sess); err != nil {
		return nil, fmt.Errorf("adhoc sessions: decode %s: %w", id, err)
	}
	sess.Revision = rev
	s.hits.Add(1)
	return &sess, nil
}

// Put implements adhoc.Store: a new session (Revision 0) is inserted
// within its owner's cap, a stored one updated if nobody changed it since
// it was read. sess.Revision is the new revision afterwards.
func (s *SessionStore) Put(ctx context.Context, sess *adhoc.Session) error {
	s.sweep(ctx)
	now := s.now()
	cp := *sess
	cp.Expires = now.Add(s.ttl)
	data, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("adhoc sessions: encode: %w", err)
	}
	if sess.Revision > 0 {
		var rev int64
		err := s.db.pool.QueryRow(ctx, `UPDATE adhoc_sessions SET revision = revision + 1, expires = $3, data = $4
			WHERE id = $1 AND revision = $2 AND NOT ended AND expires >= $5 RETURNING revision`,
			sess.ID, sess.Revision, cp.Expires, data, now).Scan(&rev)
		if errors.Is(err, pgx.ErrNoRows) {
			return s.whyNotUpdated(ctx, sess.ID, now)
		}
		if err != nil {
			return fmt.Errorf("adhoc sessions: store %s: %w", sess.ID, err)
		}
		sess.Revision = rev
		return nil
	}
	err = pgx.BeginTxFunc(ctx, s.db.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('adhoc ' || $1, 0))`, sess.Owner); err != nil {
			return err
		}
		var held int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM adhoc_sessions WHERE owner = $1 AND NOT ended AND expires >= $2`,
			sess.Owner, now).Scan(&held); err != nil {
			return err
		}
		if held >= s.maxOwner {
			return adhoc.ErrTooManySessions
		}
		_, err := tx.Exec(ctx, `INSERT INTO adhoc_sessions (id, owner, requester, node, revision, expires, data)
			VALUES ($1, $2, $3, $4, 1, $5, $6)`, sess.ID, sess.Owner, sess.Requester, sess.Node, cp.Expires, data)
		return err
	})
	switch {
	case errors.Is(err, adhoc.ErrTooManySessions):
		s.refused.Add(1)
		return err
	case pgCode(err) == codeUniqueViolation:
		return fmt.Errorf("adhoc sessions: store %s: %w", sess.ID, adhoc.ErrSessionChanged)
	case err != nil:
		return fmt.Errorf("adhoc sessions: store %s: %w", sess.ID, err)
	}
	sess.Revision = 1
	return nil
}

// whyNotUpdated tells an update that found no row to change: the session
// ended or expired (adhoc.ErrSessionEnded), or another replica changed it
// (adhoc.ErrSessionChanged).
func (s *SessionStore) whyNotUpdated(ctx context.Context, id string, now time.Time) error {
	var ended bool
	var expires time.Time
	err := s.db.pool.QueryRow(ctx, `SELECT ended, expires FROM adhoc_sessions WHERE id = $1`, id).Scan(&ended, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows) || err == nil && (ended || now.After(expires)):
		return fmt.Errorf("adhoc sessions: store %s: %w", id, adhoc.ErrSessionEnded)
	case err != nil:
		return fmt.Errorf("adhoc sessions: store %s: %w", id, err)
	}
	return fmt.Errorf("adhoc sessions: store %s: %w", id, adhoc.ErrSessionChanged)
}

// End implements adhoc.Store: the row stays as a tombstone for the TTL.
// An id no replica stored gets a tombstone too, as the memory store
// remembers it.
func (s *SessionStore) End(ctx context.Context, id string) error {
	_, err := s.db.pool.Exec(ctx, `INSERT INTO adhoc_sessions (id, owner, requester, node, ended, expires, data)
		VALUES ($1, '', '', '', true, $2, '\x7b7d')
		ON CONFLICT (id) DO UPDATE SET ended = true, expires = excluded.expires, revision = adhoc_sessions.revision + 1`,
		id, s.now().Add(s.ttl))
	if err != nil {
		return fmt.Errorf("adhoc sessions: end %s: %w", id, err)
	}
	return nil
}

// EndOwner implements adhoc.OwnerEnder.
func (s *SessionStore) EndOwner(ctx context.Context, owner string) error {
	_, err := s.db.pool.Exec(ctx, `UPDATE adhoc_sessions SET ended = true, expires = $2, revision = revision + 1
		WHERE owner = $1 AND NOT ended`, owner, s.now().Add(s.ttl))
	if err != nil {
		return fmt.Errorf("adhoc sessions: end the sessions of %s: %w", owner, err)
	}
	return nil
}

// sweepEvery is how often one replica deletes the rows past their TTL.
const sweepEvery = time.Minute

// sweep deletes expired rows (sessions and tombstones) if this replica has
// not for sweepEvery; errors are left to the next sweep.
func (s *SessionStore) sweep(ctx context.Context) {
	now := s.now()
	last := s.lastSweep.Load()
	if now.UnixNano()-last < int64(sweepEvery) || !s.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	tag, err := s.db.pool.Exec(ctx, `DELETE FROM adhoc_sessions WHERE expires < $1`, now)
	if err == nil {
		s.expirations.Add(uint64(tag.RowsAffected()))
	}
}

// Stats implements adhoc.StatsReporter: this replica's hits, misses,
// expirations and refusals, and the live sessions of all (0 when the
// database cannot be read).
func (s *SessionStore) Stats() adhoc.StoreStats {
	st := adhoc.StoreStats{Hits: s.hits.Load(), Misses: s.misses.Load(), Expirations: s.expirations.Load(), Refusals: s.refused.Load()}
	ctx, cancel := context.WithTimeout(context.Background(), statementTimeout)
	defer cancel()
	_ = s.db.pool.QueryRow(ctx, `SELECT count(*) FROM adhoc_sessions WHERE NOT ended AND expires >= $1`, s.now()).Scan(&st.Held)
	return st
}
