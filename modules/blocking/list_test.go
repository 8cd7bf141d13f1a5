package blocking

import (
	"context"
	"strconv"
	"testing"
)

func listOf(jids ...string) *list {
	set := make(map[string]struct{})
	for _, j := range jids {
		set[j] = struct{}{}
	}
	return newList(set)
}

// TestBlocks: the JID matching rules of XEP-0191 §6.
func TestBlocks(t *testing.T) {
	for _, tc := range []struct {
		item string
		yes  []string
		no   []string
	}{
		{"romeo@montague.net/orchard",
			[]string{"romeo@montague.net/orchard"},
			[]string{"romeo@montague.net", "romeo@montague.net/garden", "montague.net", "montague.net/orchard"}},
		{"romeo@montague.net",
			[]string{"romeo@montague.net", "romeo@montague.net/orchard", "romeo@montague.net/a/b@c"},
			[]string{"benvolio@montague.net", "montague.net", "romeo@capulet.com"}},
		{"montague.net/orchard",
			[]string{"montague.net/orchard"},
			[]string{"montague.net", "romeo@montague.net/orchard", "montague.net/garden"}},
		{"montague.net",
			[]string{"montague.net", "montague.net/orchard", "romeo@montague.net", "romeo@montague.net/orchard"},
			[]string{"capulet.com", "romeo@capulet.com/montague.net", "sub.montague.net"}},
	} {
		l := listOf(tc.item)
		for _, j := range tc.yes {
			if !l.blocks(j) {
				t.Errorf("item %s does not block %s", tc.item, j)
			}
		}
		for _, j := range tc.no {
			if l.blocks(j) {
				t.Errorf("item %s blocks %s", tc.item, j)
			}
		}
	}
	if emptyList.blocks("romeo@montague.net") || !emptyList.empty() {
		t.Error("the empty list blocks")
	}
}

// TestCacheBound: past its limit the cache drops the lists of accounts
// without a session, never those online, and a change stored while a list
// was being read wins over the read.
func TestCacheBound(t *testing.T) {
	online := map[string]bool{"alice": true, "bob": true}
	c := newCache(func(u string) bool { return online[u] })
	read := func(context.Context, string) (*list, error) { return emptyList, nil }
	ctx := context.Background()
	for _, u := range []string{"alice", "bob"} {
		if _, err := c.load(ctx, u, read); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 * minCached {
		if _, err := c.load(ctx, "offline"+strconv.Itoa(i), read); err != nil {
			t.Fatal(err)
		}
		if n := c.size(); n > 2*minCached+2 {
			t.Fatalf("the cache holds %d lists", n)
		}
	}
	for _, u := range []string{"alice", "bob"} {
		if _, ok := c.get(u); !ok {
			t.Errorf("the list of %s, online, was dropped", u)
		}
	}

	changed := listOf("romeo@montague.net")
	stale := func(context.Context, string) (*list, error) {
		c.set("carol", changed) // stored and cached while the read ran
		return emptyList, nil
	}
	if l, _ := c.load(ctx, "carol", stale); l != changed {
		t.Error("a list read before a change replaced the changed one")
	}
}
