package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Archive is each account's message archive (XEP-0313): the messages it
// sent and received, in the order the server handled them, each under an id
// of its own (the XEP-0359 stanza-id its copy carries). DeleteAccount
// removes an account's archive with it.
type Archive interface {
	// AppendArchive adds m to the account's archive and returns its id
	// (m.ID is ignored); past q.MaxMessages the oldest go. It may return
	// before the message is on disk (Bolt writes in batches): every read of
	// the archive sees it. A message for an account that does not exist is
	// not kept (it may still get an id: the check is not on the path of
	// every message); a store with a free-disk floor returns ErrNoSpace
	// below it.
	AppendArchive(ctx context.Context, username string, m ArchivedMessage, q ArchiveQuota) (string, error)
	// QueryArchive returns a page of the account's archive, oldest first,
	// and whether it reaches the end of what matches in the direction of
	// the query (XEP-0313's complete).
	QueryArchive(ctx context.Context, username string, q ArchiveQuery) ([]ArchivedMessage, bool, error)
	// ExpireArchive removes up to limit archived messages (of any
	// accounts) older than before, and returns how many it removed.
	ExpireArchive(ctx context.Context, before time.Time, limit int) (int, error)
	// ArchiveSize returns the messages and bytes of the account's archive.
	ArchiveSize(ctx context.Context, username string) (messages int, bytes int64, err error)
}

// ArchiveUsageReporter is implemented by stores that count what all the
// accounts' archives hold together, for the status report.
type ArchiveUsageReporter interface {
	// ArchiveUsage returns the messages and bytes of every account's
	// archive together, as ArchiveSize counts them.
	ArchiveUsage(ctx context.Context) (messages, bytes int64, err error)
}

// Interface guard.
var _ ArchiveUsageReporter = (*Bolt)(nil)

// ArchivedMessage is one message of an archive.
type ArchivedMessage struct {
	// ID is the archive's id of the message, time-ordered: ids compare as
	// the messages were archived.
	ID string `json:"-"`
	// Stamp is when the server archived it.
	Stamp time.Time `json:"-"`
	// With is the other party's JID, as the message names it (full when it
	// came from or went to a resource).
	With string `json:"with"`
	// XML is the whole stanza as kept (wire.Serialize).
	XML string `json:"xml"`
}

// ArchiveQuota bounds an account's archive; zero fields set no bound.
type ArchiveQuota struct {
	MaxMessages int
}

// ArchiveQuery selects a page of an archive (XEP-0313 §4.1, XEP-0059).
type ArchiveQuery struct {
	// With keeps the messages with this JID: a bare JID matches every
	// resource of it, a full JID that one, a domain every JID at it. ""
	// keeps all.
	With string
	// Start and End bound the stamps (inclusive); zero: unbounded.
	Start, End time.Time
	// AfterID and BeforeID bound the ids (exclusive); "": unbounded. An id
	// not in the archive is ErrNotFound.
	AfterID, BeforeID string
	// IDs, when set, selects those messages alone.
	IDs []string
	// Max is the page size (at least 1).
	Max int
	// Last pages from the end: the newest Max messages of what matches
	// (XEP-0059 <before/>).
	Last bool
}

// bucketArchive holds one nested bucket per account: key the 8-byte id,
// value the message as JSON; and the account's counters under keyUsage.
var bucketArchive = []byte("archive")

// ArchiveClock makes archive ids: nanoseconds since the epoch, kept
// increasing across the calls of one process so that two messages never
// share one. Every backend makes its ids so: they sort as the messages were
// archived, tell their stamp, and survive a move between backends
// (storage.Transfer keeps them).
type ArchiveClock struct {
	mu   sync.Mutex
	last uint64
}

// Next returns an id for a message archived at now: now in nanoseconds, or
// one more than the last id returned when that is not earlier.
func (a *ArchiveClock) Next(now time.Time) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := uint64(now.UnixNano())
	if n <= a.last {
		n = a.last + 1
	}
	a.last = n
	return n
}

// FormatArchiveID renders an id as the 16 hex digits clients see (which
// sort as the numbers do).
func FormatArchiveID(n uint64) string { return fmt.Sprintf("%016x", n) }

// ParseArchiveID reads an id back; false for a string no store makes.
func ParseArchiveID(id string) (uint64, bool) {
	k, ok := parseArchiveID(id)
	if !ok {
		return 0, false
	}
	return binary.BigEndian.Uint64(k), true
}

// ArchiveStamp is the time an id tells: when its message was archived.
func ArchiveStamp(n uint64) time.Time { return time.Unix(0, int64(n)).UTC() }

func archiveKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// archiveID renders an archive key as an id.
func archiveID(k []byte) string { return hex.EncodeToString(k) }

// parseArchiveID reads an id back into its key; false for an id this store
// never made.
func parseArchiveID(id string) ([]byte, bool) {
	k, err := hex.DecodeString(id)
	return k, err == nil && len(k) == 8
}

func stampOf(k []byte) time.Time { return ArchiveStamp(binary.BigEndian.Uint64(k)) }

// Archiving is written in batches: AppendArchive takes the id and queues
// the message, and a writer commits what is queued in one transaction a few
// milliseconds later (archiveDelay), so that archiving every message costs
// routing one fsync per batch rather than per message. A read of the
// archive (a query, its size, expiry) writes what is queued first, and
// Close does: a query sees every message appended before it. What a crash
// loses is at most the last archiveDelay of archiving, never a message:
// delivery does not wait for the archive.

// archiveDelay is how long a queued message waits for its batch;
// archiveQueueMax how many may wait before an append writes them itself.
const (
	archiveDelay    = 5 * time.Millisecond
	archiveQueueMax = 10000
)

type pendingArchive struct {
	user     string
	key, val []byte
	q        ArchiveQuota
}

// AppendArchive implements Archive.
func (s *Bolt) AppendArchive(ctx context.Context, username string, m ArchivedMessage, q ArchiveQuota) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := s.floor.check(); err != nil {
		return "", fmt.Errorf("storage: archive for %q: %w", username, err)
	}
	// Whether the account exists is not read here, on the path of every
	// message: the batch skips an account that is not there (or went
	// meanwhile).
	val, err := encodeArchived(m)
	if err != nil {
		return "", fmt.Errorf("storage: archive for %q: %w", username, err)
	}
	key := archiveKey(s.archiveIDs.Next(time.Now()))
	if err := s.archive.Add(ctx, pendingArchive{user: username, key: key, val: val, q: q}); err != nil {
		return "", fmt.Errorf("storage: archive for %q: %w", username, err)
	}
	return archiveID(key), nil
}

// A message is kept as the byte archivedV1, the length of With (a
// uvarint), With, and the XML as it is: nothing to encode on the path of
// every message. (JSON, which the first archives of this version kept, is
// still read.)
const archivedV1 = 0x01

func encodeArchived(m ArchivedMessage) ([]byte, error) {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(m.With)+len(m.XML))
	b = append(b, archivedV1)
	b = binary.AppendUvarint(b, uint64(len(m.With)))
	b = append(b, m.With...)
	return append(b, m.XML...), nil
}

// decodeArchived reads what encodeArchived wrote, into m's With and XML.
func decodeArchived(v []byte, m *ArchivedMessage) error {
	if len(v) == 0 || v[0] != archivedV1 {
		return json.Unmarshal(v, m)
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || uint64(len(v)-1-k) < n {
		return errors.New("storage: archived message: bad length")
	}
	m.With = string(v[1+k : 1+k+int(n)])
	m.XML = string(v[1+k+int(n):])
	return nil
}

// writeArchive commits what waits (archive.Flush).
func (s *Bolt) writeArchive() error { return s.archive.Flush(context.Background()) }

// writeBatch commits a batch in one transaction: for each account still
// there, its messages and counters, and the oldest beyond its quota.
func (s *Bolt) writeBatch(_ context.Context, batch []pendingArchive) error {
	// Each account's messages of the batch, in order: one bucket lookup
	// and one usage update per account, not per message.
	byUser := make(map[string][]pendingArchive)
	var users []string
	for _, p := range batch {
		if _, ok := byUser[p.user]; !ok {
			users = append(users, p.user)
		}
		byUser[p.user] = append(byUser[p.user], p)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, user := range users {
			b, err := userBucket(tx, bucketArchive, user)
			if errors.Is(err, ErrNotFound) {
				continue // no such account, or it went meanwhile
			}
			if err != nil {
				return err
			}
			if err := appendTo(b, byUser[user]); err != nil {
				return err
			}
		}
		return nil
	})
}

// appendTo writes messages, in order, into an account's archive bucket,
// and removes the oldest past the quota of the last.
func appendTo(b *bolt.Bucket, ps []pendingArchive) error {
	u := decodeUsage(b.Get(keyUsage))
	for _, p := range ps {
		if err := b.Put(p.key, p.val); err != nil {
			return err
		}
		u.messages++
		u.bytes += int64(len(p.val))
	}
	if q := ps[len(ps)-1].q; q.MaxMessages > 0 {
		var gone [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && u.messages > int64(q.MaxMessages); k, v = c.Next() {
			if len(k) != 8 {
				continue
			}
			u.messages--
			u.bytes -= int64(len(v))
			gone = append(gone, bytes.Clone(k))
		}
		if err := deleteKeys(b, gone); err != nil {
			return err
		}
	}
	return b.Put(keyUsage, u.encode())
}

// deleteKeys deletes keys from b. A walk collects them first: in a bucket
// written earlier in the same transaction, bbolt's Cursor.Next after
// Cursor.Delete can skip the key that follows the deleted one.
func deleteKeys(b *bolt.Bucket, keys [][]byte) error {
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// QueryArchive implements Archive: a walk of the account's bucket from one
// bound towards the other, keeping what matches, until a page and one more
// are found.
func (s *Bolt) QueryArchive(ctx context.Context, username string, q ArchiveQuery) ([]ArchivedMessage, bool, error) {
	if err := s.writeArchive(); err != nil {
		return nil, false, fmt.Errorf("storage: query the archive of %q: %w", username, err)
	}
	var out []ArchivedMessage
	complete := true
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		out, complete, err = queryBucket(tx.Bucket(bucketArchive).Bucket([]byte(username)), q)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("storage: query the archive of %q: %w", username, err)
	}
	return out, complete, nil
}

// queryBucket answers q from one archive's bucket (an account's or a
// room's; nil for an archive never written): a walk from one bound towards
// the other, keeping what matches, until a page and one more are found.
func queryBucket(b *bolt.Bucket, q ArchiveQuery) ([]ArchivedMessage, bool, error) {
	if q.Max < 1 {
		q.Max = 1
	}
	if b == nil {
		if q.AfterID != "" || q.BeforeID != "" {
			return nil, false, ErrNotFound
		}
		return nil, true, nil
	}
	var out []ArchivedMessage
	complete := true
	keep := func(k, v []byte) (bool, error) {
		if len(k) != 8 {
			return false, nil // keyUsage
		}
		st := stampOf(k)
		if !q.Start.IsZero() && st.Before(q.Start) || !q.End.IsZero() && st.After(q.End) {
			return false, nil
		}
		var m ArchivedMessage
		if err := decodeArchived(v, &m); err != nil {
			return false, err
		}
		if q.With != "" && !jidMatches(q.With, m.With) {
			return false, nil
		}
		m.ID, m.Stamp = archiveID(k), st
		out = append(out, m)
		return true, nil
	}
	if len(q.IDs) > 0 {
		for _, id := range q.IDs {
			if k, ok := parseArchiveID(id); ok {
				if v := b.Get(k); v != nil {
					if _, err := keep(k, v); err != nil {
						return nil, false, err
					}
				}
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
		return out, true, nil
	}
	// A bound by id names a message in the archive (XEP-0313 §4.1.2:
	// item-not-found otherwise, one expired since, say).
	bound := func(id string) ([]byte, bool) {
		if id == "" {
			return nil, true
		}
		k, ok := parseArchiveID(id)
		return k, ok && b.Get(k) != nil
	}
	lo, okLo := bound(q.AfterID)
	hi, okHi := bound(q.BeforeID)
	if !okLo || !okHi {
		return nil, false, ErrNotFound
	}
	// Forward from after lo up to hi, or for a Last page back from before
	// hi down to lo; a Last page is reversed at the end.
	c := b.Cursor()
	var k, v []byte
	step, past := c.Next, func(k []byte) bool { return hi != nil && bytes.Compare(k, hi) >= 0 }
	switch {
	case q.Last:
		step, past = c.Prev, func(k []byte) bool { return lo != nil && bytes.Compare(k, lo) <= 0 }
		if hi != nil {
			c.Seek(hi)
			k, v = c.Prev()
		} else {
			k, v = c.Last()
		}
	case lo != nil:
		if k, v = c.Seek(lo); bytes.Equal(k, lo) {
			k, v = c.Next()
		}
	default:
		k, v = c.First()
	}
	for n := 0; k != nil && !past(k); k, v = step() {
		ok, err := keep(k, v)
		if err != nil {
			return nil, false, err
		}
		if ok {
			if n++; n > q.Max {
				out, complete = out[:q.Max], false
				break
			}
		}
	}
	if q.Last {
		slices.Reverse(out)
	}
	return out, complete, nil
}

// jidMatches applies XEP-0313 §4.1.1's with filter: a full JID matches
// itself, a bare JID its resources, a domain its JIDs.
func jidMatches(filter, j string) bool {
	if filter == j {
		return true
	}
	if strings.Contains(filter, "/") {
		return false // a full JID: that one alone (a resource may hold "/")
	}
	if strings.HasPrefix(j, filter+"/") {
		return true // a bare JID's resource
	}
	at := strings.IndexByte(j, '@')
	if at < 0 {
		return false
	}
	domain, _, _ := strings.Cut(j[at+1:], "/")
	return domain == filter
}

// ExpireArchive implements Archive, a batch at a time in one transaction:
// the oldest messages of each account come first in its bucket.
func (s *Bolt) ExpireArchive(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, errors.New("storage: expire archives: limit must be positive")
	}
	if err := s.writeArchive(); err != nil {
		return 0, fmt.Errorf("storage: expire archives: %w", err)
	}
	n := 0
	bound := archiveKey(uint64(before.UnixNano()))
	err := s.update(ctx, func(tx *bolt.Tx) error {
		n = 0
		parent := tx.Bucket(bucketArchive)
		var users [][]byte
		if err := parent.ForEach(func(k, v []byte) error {
			if v == nil {
				users = append(users, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, user := range users {
			gone, err := expireBucket(parent.Bucket(user), bound, limit-n)
			if err != nil {
				return err
			}
			if n += gone; n >= limit {
				break
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("storage: expire archives: %w", err)
	}
	return n, nil
}

// expireBucket removes up to limit messages of one archive's bucket whose
// keys are below bound, the oldest first, with its usage counter; it
// returns how many it removed.
func expireBucket(b *bolt.Bucket, bound []byte, limit int) (int, error) {
	u := decodeUsage(b.Get(keyUsage))
	c := b.Cursor()
	var gone [][]byte
	for k, v := c.First(); k != nil && len(gone) < limit; k, v = c.Next() {
		if len(k) != 8 {
			continue
		}
		if bytes.Compare(k, bound) >= 0 {
			break
		}
		gone = append(gone, bytes.Clone(k))
		u.messages--
		u.bytes -= int64(len(v))
	}
	if len(gone) == 0 {
		return 0, nil
	}
	if err := deleteKeys(b, gone); err != nil {
		return 0, err
	}
	return len(gone), b.Put(keyUsage, u.encode())
}

// ArchiveSize implements Archive.
func (s *Bolt) ArchiveSize(ctx context.Context, username string) (int, int64, error) {
	if err := s.writeArchive(); err != nil {
		return 0, 0, fmt.Errorf("storage: archive size of %q: %w", username, err)
	}
	var u usage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketArchive).Bucket([]byte(username)); b != nil {
			u = decodeUsage(b.Get(keyUsage))
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: archive size of %q: %w", username, err)
	}
	return int(u.messages), u.bytes, nil
}

// ArchiveUsage implements ArchiveUsageReporter. What is queued is written
// first, as for ArchiveSize (nothing to do when nothing waits); then one
// read transaction adds up the accounts' usage counters, one read per
// account and none per message.
func (s *Bolt) ArchiveUsage(ctx context.Context) (int64, int64, error) {
	if err := s.writeArchive(); err != nil {
		return 0, 0, fmt.Errorf("storage: archive usage: %w", err)
	}
	var total usage
	err := s.view(ctx, func(tx *bolt.Tx) error {
		parent := tx.Bucket(bucketArchive)
		c := parent.Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if v != nil {
				continue // not an account's bucket
			}
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if b := parent.Bucket(k); b != nil {
				u := decodeUsage(b.Get(keyUsage))
				total.messages += u.messages
				total.bytes += u.bytes
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: archive usage: %w", err)
	}
	return total.messages, total.bytes, nil
}

// dropArchive removes the account's archive.
func dropArchive(tx *bolt.Tx, username string) error {
	parent := tx.Bucket(bucketArchive)
	if parent.Bucket([]byte(username)) == nil {
		return nil
	}
	return parent.DeleteBucket([]byte(username))
}
