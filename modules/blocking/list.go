package blocking

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// list is one account's blocklist as the module holds it: the blocked JIDs
// in their normal form (jid.JID.String()), as a set and sorted. A list never
// changes once made; a change replaces it whole.
type list struct {
	set   map[string]struct{}
	items []string
}

// emptyList is the list of every account that blocks no one.
var emptyList = &list{}

func newList(set map[string]struct{}) *list {
	if len(set) == 0 {
		return emptyList
	}
	items := make([]string, 0, len(set))
	for j := range set {
		items = append(items, j)
	}
	slices.Sort(items)
	return &list{set: set, items: items}
}

func (l *list) empty() bool { return len(l.set) == 0 }

func (l *list) has(j string) bool {
	_, ok := l.set[j]
	return ok
}

// blocks reports whether an item of l matches addr, a JID in its normal
// form, by the rules of XEP-0191 §6 (those of XEP-0016): an item
// user@domain/resource matches that JID only, user@domain every resource of
// it, domain/resource that JID only, and domain the domain and every JID at
// it. A normal JID's localpart and domainpart hold neither '@' nor '/'
// (RFC 7622 §3.3.1), so the string splits without parsing.
func (l *list) blocks(addr string) bool {
	if len(l.set) == 0 {
		return false
	}
	if l.has(addr) {
		return true
	}
	bare := addr
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		bare = addr[:i]
		if l.has(bare) {
			return true
		}
	}
	if i := strings.IndexByte(bare, '@'); i >= 0 {
		return l.has(bare[i+1:])
	}
	return false
}

// cache holds the lists of accounts in memory, so that InterceptOut, which
// must not wait, never reads the store. A list is loaded the first time a
// stanza needs it: a session's first stanza loads its account's list (for
// its outbound stanzas) and a stanza to a local account loads the
// recipient's. The router tells modules of no session's end, so the cache
// is bounded another way: once it holds more than limit lists, the lists of
// accounts that have no session left are dropped, and limit becomes twice
// what remains (at least minCached). It therefore holds the lists of the
// accounts online and, at most about as many again, of others.
type cache struct {
	mu    sync.RWMutex
	lists map[string]*list
	limit int
	// online reports whether an account has a bound session. It is called
	// with mu held: it must not call back into the cache.
	online func(user string) bool
}

// minCached is the fewest lists the cache keeps before it drops any.
const minCached = 4096

func newCache(online func(string) bool) *cache {
	return &cache{lists: make(map[string]*list), limit: minCached, online: online}
}

// get returns user's list and whether the cache has it.
func (c *cache) get(user string) (*list, bool) {
	c.mu.RLock()
	l, ok := c.lists[user]
	c.mu.RUnlock()
	return l, ok
}

// load returns user's list, reading it with read when the cache does not
// have it. A list read while a change was being made is not kept over the
// changed one: set always wins over load.
func (c *cache) load(ctx context.Context, user string, read func(context.Context, string) (*list, error)) (*list, error) {
	if l, ok := c.get(user); ok {
		return l, nil
	}
	l, err := read(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("blocking: load the blocklist of %q: %w", user, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.lists[user]; ok {
		return cur, nil
	}
	c.lists[user] = l
	c.trim()
	return l, nil
}

// set records user's list as just stored.
func (c *cache) set(user string, l *list) {
	c.mu.Lock()
	c.lists[user] = l
	c.trim()
	c.mu.Unlock()
}

// drop forgets user's list (a deleted account's).
func (c *cache) drop(user string) {
	c.mu.Lock()
	delete(c.lists, user)
	c.mu.Unlock()
}

// trim drops the lists of accounts without a session once there are more
// than limit; mu is held. A session binds before it sends its first stanza,
// and that stanza loads the list again if it was dropped, so an account
// online keeps its list.
func (c *cache) trim() {
	if len(c.lists) <= c.limit {
		return
	}
	for user := range c.lists {
		if !c.online(user) {
			delete(c.lists, user)
		}
	}
	c.limit = max(minCached, 2*len(c.lists))
}

// size returns the lists held, for tests.
func (c *cache) size() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.lists)
}
