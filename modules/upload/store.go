package upload

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The folder holds, for each slot, TOKEN.json (its metadata, written when
// the slot is given and again once the file is stored), TOKEN.part while an
// upload is under way, and TOKEN, the file's bytes, once it is complete.
// The metadata on disk is the truth: a request reads it, so that any
// process sharing the folder serves any file and takes the PUT of any slot.
// The index in memory only counts what the quotas need, and what the
// sweeper looks at.

// tokenBytes is the randomness of a slot's token: 192 bits, written as 32
// characters of unpadded base64url.
const tokenBytes = 24

var tokenEncoding = base64.RawURLEncoding

// newToken returns a random token.
func newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return tokenEncoding.EncodeToString(b), nil
}

// validToken reports whether s could be a token: checked before s names
// a file.
func validToken(s string) bool {
	if len(s) != tokenEncoding.EncodedLen(tokenBytes) {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
		default:
			return false
		}
	}
	return true
}

// meta is what TOKEN.json holds.
type meta struct {
	// Owner is the bare JID of the account that asked for the slot.
	Owner string `json:"owner"`
	// Name is the file name the slot was asked for.
	Name string `json:"name"`
	// Size is the declared size in bytes.
	Size int64 `json:"size"`
	// Type is the content type, declared or, when none was, the PUT's;
	// empty until one is known.
	Type string `json:"type,omitempty"`
	// Created is when the slot was given; SlotExpires when its PUT URL
	// stops taking an upload.
	Created     time.Time `json:"created"`
	SlotExpires time.Time `json:"slot_expires"`
	// Uploaded is when the file was stored; zero while it is not.
	Uploaded time.Time `json:"uploaded,omitzero"`
}

// entry is what the index keeps of a slot or a file.
type entry struct {
	owner string
	size  int64
	// pending is set while no file was stored for the slot, as far as
	// this process knows.
	pending bool
	// due is when the sweeper looks at it: the slot's expiry while pending,
	// the file's once stored; zero: never (files kept for good).
	due time.Time
}

// store is the folder and its index.
type store struct {
	dir          string
	now          func() time.Time
	expireAfter  time.Duration
	slotLifetime time.Duration

	mu      sync.Mutex
	entries map[string]*entry
	// used is the bytes of each owner's files and open slots; pending the
	// number of its open slots; total the bytes of everyone's.
	used    map[string]int64
	pending map[string]int
	total   int64
}

func (s *store) dataPath(tok string) string { return filepath.Join(s.dir, tok) }
func (s *store) metaPath(tok string) string { return filepath.Join(s.dir, tok+".json") }
func (s *store) partPath(tok string) string { return filepath.Join(s.dir, tok+".part") }

// expiry is when the file described by m stops being served; zero: never.
func (s *store) expiry(m meta) time.Time {
	if m.Uploaded.IsZero() || s.expireAfter <= 0 {
		return time.Time{}
	}
	return m.Uploaded.Add(s.expireAfter)
}

// due is when the sweeper should look at the slot or file of m.
func (s *store) due(m meta) time.Time {
	if m.Uploaded.IsZero() {
		return m.SlotExpires
	}
	return s.expiry(m)
}

// open makes the folder and loads the index from the metadata in it,
// removing what no metadata file explains (the leftovers of a crash).
func openStore(dir string, now func() time.Time, expireAfter, slotLifetime time.Duration) (*store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("upload: folder: %w", err)
	}
	s := &store{dir: dir, now: now, expireAfter: expireAfter, slotLifetime: slotLifetime,
		entries: map[string]*entry{}, used: map[string]int64{}, pending: map[string]int{}}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("upload: folder: %w", err)
	}
	names := make(map[string]fs.DirEntry, len(des))
	for _, de := range des {
		names[de.Name()] = de
	}
	for name := range names {
		tok, ok := strings.CutSuffix(name, ".json")
		if !ok || !validToken(tok) {
			continue
		}
		m, err := s.read(tok)
		if err != nil {
			// Unreadable metadata explains nothing: the sweeper of a
			// later start sees the same; leave it for the operator.
			continue
		}
		s.addLocked(tok, m)
	}
	for name, de := range names {
		base, _, _ := strings.Cut(name, ".")
		switch {
		case strings.Contains(name, ".json.tmp"):
			// A metadata file half written.
		case validToken(base) && names[base+".json"] == nil:
			// Bytes or a partial upload without metadata.
		default:
			continue
		}
		// Only old ones: another process sharing the folder may be
		// writing a new one.
		if info, err := de.Info(); err == nil && now().Sub(info.ModTime()) > slotLifetime {
			_ = os.Remove(filepath.Join(dir, name))
		}
	}
	return s, nil
}

// read returns the metadata of tok from disk; an error wrapping
// fs.ErrNotExist when there is none.
func (s *store) read(tok string) (meta, error) {
	var m meta
	b, err := os.ReadFile(s.metaPath(tok))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("upload: metadata of %s: %w", tok, err)
	}
	return m, nil
}

// write replaces the metadata of tok on disk (a new file renamed over the
// old one, so that a reader sees one or the other).
func (s *store) write(tok string, m meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(s.dir, tok+".json.tmp*")
	if err != nil {
		return fmt.Errorf("upload: metadata: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), s.metaPath(tok))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("upload: metadata: %w", err)
	}
	return nil
}

// addLocked indexes tok (s.mu held, or the store not shared yet).
func (s *store) addLocked(tok string, m meta) {
	if old := s.entries[tok]; old != nil {
		s.forgetLocked(tok)
	}
	e := &entry{owner: m.Owner, size: m.Size, pending: m.Uploaded.IsZero(), due: s.due(m)}
	s.entries[tok] = e
	s.used[e.owner] += e.size
	s.total += e.size
	if e.pending {
		s.pending[e.owner]++
	}
}

// forgetLocked drops tok from the index (s.mu held).
func (s *store) forgetLocked(tok string) {
	e := s.entries[tok]
	if e == nil {
		return
	}
	delete(s.entries, tok)
	if s.used[e.owner] -= e.size; s.used[e.owner] <= 0 {
		delete(s.used, e.owner)
	}
	s.total -= e.size
	if e.pending {
		if s.pending[e.owner]--; s.pending[e.owner] <= 0 {
			delete(s.pending, e.owner)
		}
	}
}

// stored records that the file of tok, described by m, is complete.
func (s *store) stored(tok string, m meta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(tok, m)
}

// remove deletes the files of tok and drops it from the index.
func (s *store) remove(tok string) error {
	var errs []error
	for _, p := range []string{s.dataPath(tok), s.partPath(tok), s.metaPath(tok)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	s.mu.Lock()
	s.forgetLocked(tok)
	s.mu.Unlock()
	return errors.Join(errs...)
}

// usage is what the quotas look at: owner's bytes and open slots, and
// everyone's bytes.
func (s *store) usage(owner string) (used int64, pending int, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used[owner], s.pending[owner], s.total
}

// reserve indexes a new slot of m if fits accepts the owner's usage and
// the total at once, so that two requests cannot both take the last of a
// quota; fits returns the error to answer instead.
//
// Slots past their lifetime and files past their expiry that the sweeper
// has not removed yet count in the index, but not against a request: when
// the index refuses it, the index is counted again without them (which
// visits every entry, only on that path).
func (s *store) reserve(tok string, m meta, fits func(used int64, pending int, total int64) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := fits(s.used[m.Owner], s.pending[m.Owner], s.total); err != nil {
		used, pending, total := s.liveLocked(m.Owner, m.Created)
		if err := fits(used, pending, total); err != nil {
			return err
		}
	}
	s.addLocked(tok, m)
	return nil
}

// liveLocked is usage without what is due at now (s.mu held).
func (s *store) liveLocked(owner string, now time.Time) (used int64, pending int, total int64) {
	for _, e := range s.entries {
		if !e.due.IsZero() && !now.Before(e.due) {
			continue
		}
		total += e.size
		if e.owner == owner {
			used += e.size
			if e.pending {
				pending++
			}
		}
	}
	return used, pending, total
}

// nextFree is the earliest time a stored file of owner (of anyone's when
// owner is empty) expires, which frees its bytes; zero when none will.
func (s *store) nextFree(owner string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first time.Time
	for _, e := range s.entries {
		if (owner == "" || e.owner == owner) && !e.due.IsZero() && (first.IsZero() || e.due.Before(first)) {
			first = e.due
		}
	}
	return first
}

// owned lists the tokens of owner's slots and files.
func (s *store) owned(owner string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for tok, e := range s.entries {
		if e.owner == owner {
			out = append(out, tok)
		}
	}
	return out
}

// sweepBatch is how many slots and files one sweep handles between two
// looks at its context and the index's lock.
const sweepBatch = 100

// sweep removes what is due: files past their expiry and slots past their
// lifetime that nobody uploaded to, a batch at a time. Each is looked up on
// disk first, which may have changed under another process sharing the
// folder: a slot uploaded to meanwhile is kept and indexed as a file, an
// upload still writing is left for the next sweep. It returns what it
// removed: expired files and abandoned slots.
func (s *store) sweep(ctx context.Context, removed func(tok string, file bool)) error {
	now := s.now()
	s.mu.Lock()
	var due []string
	for tok, e := range s.entries {
		if !e.due.IsZero() && !now.Before(e.due) {
			due = append(due, tok)
		}
	}
	s.mu.Unlock()
	var errs []error
	for i, tok := range due {
		if i%sweepBatch == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		m, err := s.read(tok)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Removed by another process: drop what is left.
			errs = append(errs, s.remove(tok))
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		if d := s.due(m); d.IsZero() || now.Before(d) {
			s.stored(tok, m)
			continue
		}
		if m.Uploaded.IsZero() {
			// An upload that began within the slot's lifetime may still
			// be writing: it is left while its partial file grows.
			if st, err := os.Stat(s.partPath(tok)); err == nil && now.Sub(st.ModTime()) < s.slotLifetime {
				continue
			}
		}
		if err := s.remove(tok); err != nil {
			errs = append(errs, err)
			continue
		}
		removed(tok, !m.Uploaded.IsZero())
	}
	return errors.Join(errs...)
}

// freeBytes is the space left to unprivileged users on the filesystem of
// the folder.
func (s *store) freeBytes() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
