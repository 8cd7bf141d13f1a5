package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Entry is one bound session in the directory.
type Entry struct {
	User      string // localpart
	Resource  string
	Replica   string // id of the replica holding the stream
	Stream    string // the stream's id, unique per connection
	Priority  int
	Available bool   // sent available presence
	Presence  string // last available presence stanza as XML ("" if none); at most MaxPresence bytes
	Since     time.Time
}

// entryJSON is an entry as the directory stores it (a field of the user's
// hash). The Lua scripts read "replica" and "stream", and Update's sets
// "priority", "available" and "presence".
type entryJSON struct {
	User      string    `json:"user"`
	Resource  string    `json:"resource"`
	Replica   string    `json:"replica"`
	Stream    string    `json:"stream"`
	Priority  int       `json:"priority"`
	Available bool      `json:"available"`
	Presence  string    `json:"presence,omitempty"`
	Since     time.Time `json:"since"`
}

func encodeEntry(e Entry) string {
	j := entryJSON(e)
	j.Since = e.Since.UTC()
	b, _ := json.Marshal(j)
	return string(b)
}

func decodeEntry(s string) (Entry, error) {
	var j entryJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return Entry{}, err
	}
	return Entry(j), nil
}

// member is an entry's member of its replica's own set.
func member(user, resource string) string { return user + "\x00" + resource }

// check refuses an entry the directory cannot hold.
func check(e Entry) error {
	switch {
	case e.User == "" || e.Resource == "" || e.Stream == "":
		return fmt.Errorf("cluster: entry %q/%q stream %q: user, resource and stream are required", e.User, e.Resource, e.Stream)
	case strings.ContainsRune(e.User, 0) || strings.ContainsRune(e.Resource, 0):
		return fmt.Errorf("cluster: entry %q/%q: NUL in user or resource", e.User, e.Resource)
	case len(e.Presence) > MaxPresence:
		return fmt.Errorf("cluster: entry %s/%s: %w (%d bytes)", e.User, e.Resource, ErrPresenceTooLong, len(e.Presence))
	}
	return nil
}

// Bind registers e as this replica's (its Replica is set to Replica();
// a zero Since to now) atomically, in one Lua script: if an entry for
// (User, Resource) exists, on any replica, it is replaced and returned as
// old, and the caller closes that stream with conflict, wherever it is;
// if no entry exists for that resource and the user already has max
// entries, it answers ErrTooManySessions (max <= 0: no cap). It adds the
// entry to this replica's owned set and the user to the online set. While
// this replica has no lease (fenced, or re-registering after Redis lost
// it) it answers ErrFenced.
func (c *Cluster) Bind(ctx context.Context, e Entry, max int) (old *Entry, err error) {
	if err := check(e); err != nil {
		return nil, err
	}
	e.Replica = c.id
	if e.Since.IsZero() {
		e.Since = time.Now()
	}
	res, err := c.bind(ctx, e, max)
	if err != nil {
		if errors.Is(err, ErrFenced) {
			return nil, err
		}
		return nil, fmt.Errorf("cluster: bind %s/%s: %w", e.User, e.Resource, err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("cluster: bind %s/%s: empty answer", e.User, e.Resource)
	}
	switch res[0] {
	case "ok":
	case "max":
		return nil, ErrTooManySessions
	case "nolease":
		c.leaseMissing()
		return nil, ErrFenced
	default:
		return nil, fmt.Errorf("cluster: bind %s/%s: script answered %q", e.User, e.Resource, res)
	}
	if len(res) < 2 || res[1] == "" {
		return nil, nil
	}
	o, err := decodeEntry(res[1])
	if err != nil {
		c.log.Warn("cluster: replaced an unreadable entry", "user", e.User, "resource", e.Resource, "err", err)
		return nil, nil
	}
	if o.Stream == e.Stream {
		// The same session again (a retried call): nothing to close.
		return nil, nil
	}
	return &o, nil
}

// bind runs the bind script unless a recovery is due or running (which
// waits for it: see gate).
func (c *Cluster) bind(ctx context.Context, e Entry, max int) ([]string, error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	c.st.mu.Lock()
	blocked := c.st.fenced || c.st.recovering
	c.st.mu.Unlock()
	if blocked {
		return nil, ErrFenced
	}
	return bindScript.Run(ctx, c.rdb,
		[]string{c.key("u:", e.User), c.key("own:", c.id), c.key("online", ""), c.key("replica:", c.id)},
		e.User, e.Resource, encodeEntry(e), max, c.pfx, c.id).StringSlice()
}

// Update replaces the priority, availability and presence of the entry of
// (e.User, e.Resource) if the stored entry has e's Stream (in a Lua
// script); it returns false if not (the session was replaced or
// removed). While this replica re-registers after Redis lost its lease,
// the update is held and applied once the sessions are re-published, and
// Update returns true; when this replica is fenced it returns ErrFenced.
func (c *Cluster) Update(ctx context.Context, e Entry) (bool, error) {
	if err := check(e); err != nil {
		return false, err
	}
	c.st.mu.Lock()
	if c.st.fenced {
		c.st.mu.Unlock()
		return false, ErrFenced
	}
	if c.st.recovering {
		c.holdUpdate(e)
		c.st.mu.Unlock()
		return true, nil
	}
	c.st.mu.Unlock()
	n, err := c.update(ctx, e)
	if err != nil {
		return false, fmt.Errorf("cluster: update %s/%s: %w", e.User, e.Resource, err)
	}
	if n == -1 {
		c.st.mu.Lock()
		fenced := c.st.fenced
		if !fenced {
			c.holdUpdate(e)
		}
		c.st.mu.Unlock()
		c.leaseMissing()
		if fenced {
			return false, ErrFenced
		}
		return true, nil
	}
	return n == 1, nil
}

// holdUpdate keeps e for after the recovery; the caller holds st.mu.
func (c *Cluster) holdUpdate(e Entry) {
	if c.st.updates == nil {
		c.st.updates = make(map[string]Entry)
	}
	c.st.updates[member(e.User, e.Resource)] = e
}

// update runs the update script: 1 updated, 0 not this stream, -1 no lease.
func (c *Cluster) update(ctx context.Context, e Entry) (int64, error) {
	avail := "0"
	if e.Available {
		avail = "1"
	}
	return updateScript.Run(ctx, c.rdb,
		[]string{c.key("u:", e.User), c.key("replica:", c.id)},
		e.Resource, e.Stream, strconv.Itoa(e.Priority), avail, e.Presence).Int64()
}

// Unbind removes the entry of (user, resource) only if its Stream is
// stream (a newer session that replaced it stays), in a Lua script that
// also removes it from its replica's owned set and the user from the
// online set when it was the user's last entry.
func (c *Cluster) Unbind(ctx context.Context, user, resource, stream string) error {
	c.st.mu.Lock()
	if c.st.recovering {
		c.st.unbinds = append(c.st.unbinds, unbindReq{user, resource, stream})
		if u, ok := c.st.updates[member(user, resource)]; ok && u.Stream == stream {
			delete(c.st.updates, member(user, resource))
		}
	}
	c.st.mu.Unlock()
	if err := c.unbind(ctx, user, resource, stream); err != nil {
		return fmt.Errorf("cluster: unbind %s/%s: %w", user, resource, err)
	}
	return nil
}

func (c *Cluster) unbind(ctx context.Context, user, resource, stream string) error {
	return unbindScript.Run(ctx, c.rdb,
		[]string{c.key("u:", user), c.key("online", ""), c.key("own:", c.id)},
		user, resource, stream, c.pfx, c.id).Err()
}

// Resources returns the user's entries, on every replica, ordered by
// resource.
func (c *Cluster) Resources(ctx context.Context, user string) ([]Entry, error) {
	m, err := c.rdb.HGetAll(ctx, c.key("u:", user)).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: resources of %s: %w", user, err)
	}
	return c.entries(user, m), nil
}

// entries decodes a user's hash, ordered by resource; an unreadable
// field is skipped with a log line.
func (c *Cluster) entries(user string, m map[string]string) []Entry {
	out := make([]Entry, 0, len(m))
	for res, v := range m {
		e, err := decodeEntry(v)
		if err != nil {
			c.log.Warn("cluster: unreadable directory entry", "user", user, "resource", res, "err", err)
			continue
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Resource < out[j].Resource })
	return out
}

// ResourcesOf returns the entries of several users in one pipeline; users
// without entries are not in the map.
func (c *Cluster) ResourcesOf(ctx context.Context, users []string) (map[string][]Entry, error) {
	out := make(map[string][]Entry)
	if len(users) == 0 {
		return out, nil
	}
	cmds := make(map[string]*redis.MapStringStringCmd, len(users))
	pipe := c.rdb.Pipeline()
	for _, u := range users {
		if _, ok := cmds[u]; !ok {
			cmds[u] = pipe.HGetAll(ctx, c.key("u:", u))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("cluster: resources of %d users: %w", len(cmds), err)
	}
	for u, cmd := range cmds {
		if es := c.entries(u, cmd.Val()); len(es) > 0 {
			out[u] = es
		}
	}
	return out, nil
}

// Online returns how many users have an entry, and how many entries
// (sessions) there are, on every replica (a dead replica's count until it
// is reaped). One Lua script reads both, so they agree.
func (c *Cluster) Online(ctx context.Context) (users, sessions int, err error) {
	res, err := onlineScript.Run(ctx, c.rdb, []string{c.key("replicas", ""), c.key("online", "")}, c.pfx).Int64Slice()
	if err != nil {
		return 0, 0, fmt.Errorf("cluster: online counts: %w", err)
	}
	if len(res) != 2 {
		return 0, 0, fmt.Errorf("cluster: online counts: script answered %v", res)
	}
	return int(res[0]), int(res[1]), nil
}

// Users returns the users that have an entry, sorted.
func (c *Cluster) Users(ctx context.Context) ([]string, error) {
	users, err := c.rdb.SMembers(ctx, c.key("online", "")).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: online users: %w", err)
	}
	sort.Strings(users)
	return users, nil
}

// Replicas returns the live replicas (those whose lease key exists),
// ordered by id, this one included.
func (c *Cluster) Replicas(ctx context.Context) ([]ReplicaInfo, error) {
	zs, err := c.rdb.ZRangeWithScores(ctx, c.key("replicas", ""), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: replicas: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	keys := make([]string, len(zs))
	for i, z := range zs {
		keys[i] = c.key("replica:", z.Member.(string))
	}
	vals, err := c.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: replicas: %w", err)
	}
	var out []ReplicaInfo
	for i, z := range zs {
		s, ok := vals[i].(string)
		if !ok {
			continue // no lease: dead, not reaped yet
		}
		r := ReplicaInfo{ID: z.Member.(string), LeaseExpiry: time.UnixMilli(int64(z.Score))}
		var v leaseValue
		if err := json.Unmarshal([]byte(s), &v); err == nil {
			r.Address, r.Started = v.Address, v.Started
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// errNoLease stops a recovery whose lease vanished under it.
var errNoLease = errors.New("cluster: the lease vanished")
