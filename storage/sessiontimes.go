package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Every session writes two times to its account: LastLogin at bind and
// LastLogout at close. Written one transaction each, they were two fsyncs
// per session and most of the cost of a login. sessionTimes keeps them in
// memory for up to a delay and writes all that is pending in one
// transaction; reads through the store see them at once, and Close writes
// what is left. What a crash can lose is bounded by the delay
// (storage.login_time_delay), and only these two timestamps.

// Option configures Open.
type Option func(*options)

type options struct {
	loginTimeDelay time.Duration
	minFreeDisk    int64
}

// WithLoginTimeDelay makes RecordLogin and RecordLogout wait up to d in
// memory and be written together; 0 writes each at once (one transaction
// each). Open's default is one second.
func WithLoginTimeDelay(d time.Duration) Option {
	return func(o *options) { o.loginTimeDelay = d }
}

// DefaultLoginTimeDelay is Open's delay for login and logout times.
const DefaultLoginTimeDelay = time.Second

// batchLimit flushes early when this many accounts have times pending, to
// keep one transaction small.
const batchLimit = 1024

// times are the session times of one account not yet written.
type times struct{ login, logout time.Time }

func (t times) merge(o times) times {
	return times{login: later(t.login, o.login), logout: later(t.logout, o.logout)}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// apply sets the account's times to t's where t's are later. A time from
// before the account was created belongs to a deleted account of the same
// name and is ignored.
func (t times) apply(a *Account) {
	if t.login.After(a.LastLogin) && !t.login.Before(a.Created) {
		a.LastLogin = t.login
	}
	if t.logout.After(a.LastLogout) && !t.logout.Before(a.Created) {
		a.LastLogout = t.logout
	}
}

// sessionTimes is the write-behind buffer of a Bolt store.
type sessionTimes struct {
	delay time.Duration

	mu       sync.Mutex
	pending  map[string]times // recorded, not yet in a transaction
	flushing map[string]times // in the transaction being written
	closed   bool
	err      error // the last failed flush, kept for Close

	kick    chan struct{} // something is pending, or the batch is full
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newSessionTimes(delay time.Duration) *sessionTimes {
	return &sessionTimes{
		delay:   delay,
		pending: map[string]times{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
}

// RecordLogin implements Store.
func (s *Bolt) RecordLogin(username string, at time.Time) error {
	return s.record(username, times{login: at})
}

// RecordLogout implements Store.
func (s *Bolt) RecordLogout(username string, at time.Time) error {
	return s.record(username, times{logout: at})
}

var errClosed = errors.New("storage: closed")

func (s *Bolt) record(username string, t times) error {
	st := s.times
	if st == nil {
		return s.writeTimes(map[string]times{username: t})
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return errClosed
	}
	_, had := st.pending[username]
	st.pending[username] = st.pending[username].merge(t)
	// A kick starts the delay (the first account of a batch) or ends it (a
	// full batch); the same account again does neither.
	if n := len(st.pending); !had && (n == 1 || n >= batchLimit) {
		select {
		case st.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// unwritten returns the times not yet written of username ("" for every
// account), to apply to accounts read from the file afterwards. It is
// taken before the read: a batch that flush writes in between is then
// either in the copy or in what the read sees, where a look at pending and
// flushing after the read could miss one that flush wrote and cleared
// meanwhile.
func (s *Bolt) unwritten(username string) pendingTimes {
	st := s.times
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	out := pendingTimes{}
	for _, m := range []map[string]times{st.flushing, st.pending} {
		if username != "" {
			if t, ok := m[username]; ok {
				out[username] = out[username].merge(t)
			}
			continue
		}
		for u, t := range m {
			out[u] = out[u].merge(t)
		}
	}
	return out
}

// pendingTimes are the times not yet written, by account.
type pendingTimes map[string]times

// apply sets a's times to the unwritten ones where those are later.
func (p pendingTimes) apply(a *Account) {
	if t, ok := p[a.Username]; ok {
		t.apply(a)
	}
}

// forget drops the pending times of a deleted account.
func (s *Bolt) forget(username string) {
	if st := s.times; st != nil {
		st.mu.Lock()
		delete(st.pending, username)
		st.mu.Unlock()
	}
}

// flushLoop writes pending times: a delay after the first is recorded, at
// once when the batch is full, and a last time when the store closes.
func (s *Bolt) flushLoop() {
	st := s.times
	defer close(st.stopped)
	for {
		select {
		case <-st.stop:
			s.flush()
			return
		case <-st.kick:
		}
		t := time.NewTimer(st.delay)
		select {
		case <-st.stop:
			t.Stop()
			s.flush()
			return
		case <-t.C:
		case <-st.kick: // the batch is full
			t.Stop()
		}
		s.flush()
	}
}

// flush writes what is pending in one transaction. On failure the times go
// back to pending, to be tried again with the next batch.
func (s *Bolt) flush() {
	st := s.times
	st.mu.Lock()
	batch := st.pending
	if len(batch) == 0 {
		st.mu.Unlock()
		return
	}
	st.pending, st.flushing = map[string]times{}, batch
	st.mu.Unlock()

	err := s.writeTimes(batch)

	st.mu.Lock()
	defer st.mu.Unlock()
	st.flushing, st.err = nil, err
	if err != nil {
		for u, t := range batch {
			st.pending[u] = st.pending[u].merge(t)
		}
		if len(st.pending) > 0 {
			select {
			case st.kick <- struct{}{}:
			default:
			}
		}
	}
}

// writeTimes applies batch to the accounts in one transaction; accounts
// that no longer exist are skipped.
func (s *Bolt) writeTimes(batch map[string]times) error {
	err := s.update(context.Background(), func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAccounts)
		for u, t := range batch {
			var a Account
			if err := getJSON(b, []byte(u), &a); errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			t.apply(&a)
			if err := putJSON(b, []byte(u), a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: write login times of %d accounts: %w", len(batch), err)
	}
	return nil
}

// closeTimes stops the flusher after a last flush; it returns that flush's
// error, if it failed.
func (s *Bolt) closeTimes() error {
	st := s.times
	if st == nil {
		return nil
	}
	st.once.Do(func() {
		st.mu.Lock()
		st.closed = true // from now on, records are refused
		st.mu.Unlock()
		close(st.stop)
		<-st.stopped // after the last flush
	})
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}
