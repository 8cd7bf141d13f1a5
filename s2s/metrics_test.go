package s2s

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/metrics"
	"github.com/adhocd/adhocd/metrics/metricstest"
)

// fakeClock is a clock the test moves; safe for concurrent use.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// testInstruments returns instruments of n domain labels on test
// telemetry, ranked by clock.
func testInstruments(t *testing.T, n int, clock *fakeClock, list func() []Conn) (*instruments, *metrics.Telemetry) {
	t.Helper()
	tel := metricstest.New(t)
	if list == nil {
		list = func() []Conn { return nil }
	}
	m, err := newInstrumentsWith(tel.MeterProvider().Meter("github.com/adhocd/adhocd/s2s"), newDomainTable(n, clock.now), list)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
	return m, tel
}

// labelledDomains returns the domains with a label of their own now.
func (t *domainTable) labelledDomains() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	got := map[string]bool{}
	for d, e := range t.entries {
		if e.labelled {
			got[d] = true
		}
	}
	return got
}

// size returns how many domains t follows.
func (t *domainTable) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// The two domain-labelled counter families, and the label that goes with
// the domain in each.
var labelledFamilies = map[string]string{
	"adhocd_s2s_stanzas_total": "direction",
	"adhocd_s2s_bounced_total": "condition",
}

// seriesID is one exported series of a domain-labelled counter.
type seriesID struct{ family, domain, attr string }

// scrape returns the values of the domain-labelled counters in mfs.
func scrape(mfs map[string]*dto.MetricFamily) map[seriesID]float64 {
	got := map[seriesID]float64{}
	for family, attr := range labelledFamilies {
		for _, m := range mfs[family].GetMetric() {
			id := seriesID{family: family}
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "domain":
					id.domain = l.GetValue()
				case attr:
					id.attr = l.GetValue()
				}
			}
			got[id] = m.GetCounter().GetValue()
		}
	}
	return got
}

// monotonic follows every collection of the domain-labelled counters as
// Prometheus would see them, and checks that each series only grows while
// it is reported, that "other" is never missing once it appeared, and,
// through conserved, that every count is exported once: the last values of
// the series' ended lifetimes plus their current ones add up to what was
// counted.
type monotonic struct {
	t      *testing.T
	last   map[seriesID]float64
	banked map[[2]string]float64 // family, attr → last values of the lifetimes ended
	// collections and lifetimes counted: how many series ended.
	collections, ended int
}

func newMonotonic(t *testing.T) *monotonic {
	return &monotonic{t: t, last: map[seriesID]float64{}, banked: map[[2]string]float64{}}
}

// observe checks one collection; since, if not nil, is what was counted
// for each domain and series since the last collection, which a series
// that (re)appears cannot exceed. It returns the collection's values.
func (c *monotonic) observe(mfs map[string]*dto.MetricFamily, since map[seriesID]float64) map[seriesID]float64 {
	c.t.Helper()
	c.collections++
	now := scrape(mfs)
	for id, v := range now {
		prev, ok := c.last[id]
		switch {
		case ok && v < prev:
			c.t.Errorf("collection %d: %v went down from %v to %v", c.collections, id, prev, v)
		case !ok && since != nil && id.domain != otherDomain && v > since[id]:
			c.t.Errorf("collection %d: %v appeared at %v, but only %v was counted for it since the last collection", c.collections, id, v, since[id])
		}
	}
	for id, v := range c.last {
		if _, ok := now[id]; ok {
			continue
		}
		if id.domain == otherDomain {
			c.t.Errorf("collection %d: %v is missing", c.collections, id)
		}
		c.banked[[2]string{id.family, id.attr}] += v
		c.ended++
	}
	c.last = now
	return now
}

// conserved checks that the series account for want, what was counted
// by family and attr.
func (c *monotonic) conserved(want map[[2]string]float64) {
	c.t.Helper()
	got := map[[2]string]float64{}
	for k, v := range c.banked {
		got[k] += v
	}
	for id, v := range c.last {
		got[[2]string{id.family, id.attr}] += v
	}
	for k := range want {
		if got[k] != want[k] {
			c.t.Errorf("%v: the series account for %v, %v were counted", k, got[k], want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && got[k] != 0 {
			c.t.Errorf("%v: the series account for %v, none were counted", k, got[k])
		}
	}
}

// domains returns the domain label values of family in a collection.
func domains(vals map[seriesID]float64, family string) map[string]bool {
	got := map[string]bool{}
	for id := range vals {
		if id.family == family {
			got[id.domain] = true
		}
	}
	return got
}

// TestDomainLabels: while labels are left, a domain that authenticates
// gets one; past that, and for a domain that never authenticated, the
// label is "other", with no ranking in between; 0 puts every domain under
// "other".
func TestDomainLabels(t *testing.T) {
	l := newDomainTable(2, newFakeClock().now)
	if got := l.of("a.example"); got != otherDomain {
		t.Fatalf("a domain that never authenticated has label %q", got)
	}
	for _, c := range []struct{ domain, want string }{
		{"a.example", "a.example"},
		{"b.example", "b.example"},
		{"c.example", otherDomain}, // no label left
		{"a.example", "a.example"}, // kept, not counted twice
		{"", otherDomain},
		{otherDomain, otherDomain},
	} {
		if got := l.admit(c.domain); got != c.want {
			t.Errorf("admit(%q) = %q, want %q", c.domain, got, c.want)
		}
	}
	for d, want := range map[string]string{"a.example": "a.example", "b.example": "b.example", "c.example": otherDomain, "scanner.example": otherDomain} {
		if got := l.of(d); got != want {
			t.Errorf("of(%q) = %q, want %q", d, got, want)
		}
	}
	// A bounce for a domain that never authenticated does not enter it.
	l.count("scanner.example", series{bounced: true, attr: "remote-server-not-found"}, 1, false)
	if n := l.size(); n != 3 {
		t.Errorf("the table follows %d domains, want 3 (a, b, c)", n)
	}
	none := newDomainTable(0, newFakeClock().now)
	if got := none.admit("a.example"); got != otherDomain {
		t.Errorf("with 0 labels, admit gave %q", got)
	}
	if got := none.of("a.example"); got != otherDomain {
		t.Errorf("with 0 labels, of gave %q", got)
	}
	if n := none.size(); n != 0 {
		t.Errorf("with 0 labels, the table follows %d domains", n)
	}
}

// TestDomainLabelsConcurrent: domains authenticating at once never get
// more labels than the bound, and, with no ranking, each keeps the answer
// it got first.
func TestDomainLabelsConcurrent(t *testing.T) {
	const max, domains = 20, 50
	l := newDomainTable(max, newFakeClock().now)
	first := make([]string, domains)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range domains {
				d := fmt.Sprintf("d%d.example", (i+g*7)%domains)
				got := l.admit(d)
				if got != d && got != otherDomain {
					t.Errorf("admit(%q) = %q", d, got)
				}
			}
		})
	}
	wg.Wait()
	own := 0
	for i := range domains {
		d := fmt.Sprintf("d%d.example", i)
		first[i] = l.of(d)
		if first[i] == d {
			own++
		}
	}
	if own != max {
		t.Fatalf("%d domains have a label of their own, want %d", own, max)
	}
	for i := range domains {
		d := fmt.Sprintf("d%d.example", i)
		if got := l.admit(d); got != first[i] {
			t.Errorf("admit(%q) again = %q, was %q", d, got, first[i])
		}
	}
}

// TestInstruments: the pool's instruments as Prometheus scrapes them:
// their names and labels, the domain labels given at authentication only,
// the streams gauge read from the list at collection, and promlint clean.
func TestInstruments(t *testing.T) {
	var conns []Conn
	m, tel := testInstruments(t, 1, newFakeClock(), func() []Conn { return conns })
	m.authenticated("a.example", dirOut, methodDialback, true)
	m.authenticated("b.example", dirIn, methodExternal, true) // no label left
	m.authenticated("c.example", dirIn, methodDialback, false)
	m.stanza("a.example", dirOut, 2)
	m.stanza("a.example", dirIn, 1)
	m.stanza("b.example", dirIn, 3)
	m.bounce("never.example", stanza.RemoteServerNotFound, 4)
	m.bounce("a.example", stanza.ResourceConstraint, 1)
	m.bounceErr("a.example", fmt.Errorf("wrapped: %w", stanza.Error{Condition: stanza.Forbidden}))
	m.bounceErr("a.example", errors.New("not an answer to the sender"))
	m.refuse("host-unknown")
	conns = []Conn{
		{Remote: "a.example", Auth: "dialback"},
		{Remote: "a.example", Inbound: true, Auth: "dialback"},
		{Remote: "b.example", Inbound: true, Auth: "external"},
		{Remote: "scanner.example", Inbound: true}, // negotiating
	}
	mfs := metricstest.Gather(t, tel)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"adhocd_s2s_stanzas_total", map[string]string{"domain": "a.example", "direction": "out"}, 2},
		{"adhocd_s2s_stanzas_total", map[string]string{"domain": "a.example", "direction": "in"}, 1},
		{"adhocd_s2s_stanzas_total", map[string]string{"domain": "other", "direction": "in"}, 3},
		{"adhocd_s2s_stanzas_total", map[string]string{"domain": "b.example"}, 0},
		{"adhocd_s2s_bounced_total", map[string]string{"domain": "other", "condition": "remote-server-not-found"}, 4},
		{"adhocd_s2s_bounced_total", map[string]string{"domain": "a.example", "condition": "resource-constraint"}, 1},
		{"adhocd_s2s_bounced_total", map[string]string{"domain": "a.example", "condition": "forbidden"}, 1},
		{"adhocd_s2s_bounced_total", nil, 6},
		{"adhocd_s2s_auth_total", map[string]string{"direction": "out", "method": "dialback", "outcome": "success"}, 1},
		{"adhocd_s2s_auth_total", map[string]string{"direction": "in", "method": "external", "outcome": "success"}, 1},
		{"adhocd_s2s_auth_total", map[string]string{"direction": "in", "method": "dialback", "outcome": "failure"}, 1},
		{"adhocd_s2s_refused_total", map[string]string{"reason": "host-unknown"}, 1},
		{"adhocd_s2s_streams", map[string]string{"domain": "a.example", "direction": "out"}, 1},
		{"adhocd_s2s_streams", map[string]string{"domain": "a.example", "direction": "in"}, 1},
		{"adhocd_s2s_streams", map[string]string{"domain": "other", "direction": "in"}, 2},
	} {
		if got := metricstest.Value(mfs, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// auth and refused carry no domain label: an unauthenticated peer
	// names any domain it likes.
	for _, name := range []string{"adhocd_s2s_auth_total", "adhocd_s2s_refused_total"} {
		for _, s := range mfs[name].GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "domain" {
					t.Errorf("%s has a domain label: %v", name, s.GetLabel())
				}
			}
		}
	}
	if n := metricstest.Lint(t, mfs, "adhocd_s2s_"); n != 5 {
		t.Errorf("%d s2s metric families, want 5", n)
	}
	// The gauge follows the list: a stream gone is no longer counted.
	conns = conns[:1]
	mfs = metricstest.Gather(t, tel)
	if got := metricstest.Value(mfs, "adhocd_s2s_streams", nil); got != 1 {
		t.Errorf("streams after three closed: %v, want 1", got)
	}
}

// TestBusyDomainTakesLabel: with both labels taken by the first domains
// that authenticated, a domain that comes later and is busy takes, at the
// next ranking, the label of the idle one; not before a ranking, and not
// for being only a little busier. The newcomer's series start at 0 there,
// its earlier traffic stays under "other", the idle domain's series is
// reported frozen until the next ranking, then no more, and its traffic
// goes to "other"; the streams gauge follows the labels.
func TestBusyDomainTakesLabel(t *testing.T) {
	clock := newFakeClock()
	var conns []Conn
	m, tel := testInstruments(t, 2, clock, func() []Conn { return conns })
	check := newMonotonic(t)
	gather := func() map[seriesID]float64 { t.Helper(); return check.observe(metricstest.Gather(t, tel), nil) }
	in := func(d string) seriesID { return seriesID{"adhocd_s2s_stanzas_total", d, dirIn} }
	out := func(d string) seriesID { return seriesID{"adhocd_s2s_stanzas_total", d, dirOut} }
	expect := func(step string, vals map[seriesID]float64, want map[seriesID]float64) {
		t.Helper()
		for id, w := range want {
			got, ok := vals[id]
			switch {
			case w < 0 && ok:
				t.Errorf("%s: %v is reported (%v), want it gone", step, id, got)
			case w >= 0 && !ok:
				t.Errorf("%s: %v is not reported, want %v", step, id, w)
			case w >= 0 && got != w:
				t.Errorf("%s: %v = %v, want %v", step, id, got, w)
			}
		}
	}
	const gone = -1

	m.authenticated("early.example", dirIn, methodDialback, true)
	m.authenticated("idle.example", dirIn, methodDialback, true)
	m.authenticated("late.example", dirOut, methodExternal, true) // no label left
	m.stanza("early.example", dirOut, 10)
	m.stanza("idle.example", dirIn, 5)
	m.stanza("late.example", dirIn, 3)
	expect("start", gather(), map[seriesID]float64{
		out("early.example"): 10, in("early.example"): 0, in("idle.example"): 5, in(otherDomain): 3, in("late.example"): gone,
	})

	// A minute on, late is busier than idle, but not by enough.
	clock.advance(time.Minute)
	m.stanza("early.example", dirOut, 100)
	m.stanza("late.example", dirIn, 3)
	gather()
	if got := m.labels.labelledDomains(); !got["early.example"] || !got["idle.example"] {
		t.Fatalf("labels after a ranking where late is a little busier than idle: %v", got)
	}

	// Busy late, still before a ranking: nothing moves.
	clock.advance(30 * time.Second)
	m.stanza("late.example", dirIn, 200)
	m.stanza("early.example", dirOut, 100)
	expect("before the ranking", gather(), map[seriesID]float64{in(otherDomain): 206, in("late.example"): gone})

	// The ranking: late takes idle's label, its series start at 0.
	clock.advance(30 * time.Second)
	conns = []Conn{{Remote: "late.example", Inbound: true}, {Remote: "idle.example", Inbound: true}}
	mfs := metricstest.Gather(t, tel)
	expect("ranked", check.observe(mfs, nil), map[seriesID]float64{
		in("late.example"): 0, out("late.example"): 0, in(otherDomain): 206,
		in("idle.example"):   5, // frozen until the next ranking
		out("early.example"): 210,
	})
	if got := m.labels.labelledDomains(); !got["early.example"] || !got["late.example"] || len(got) != 2 {
		t.Fatalf("labels after the ranking: %v, want early and late", got)
	}
	for d, want := range map[string]float64{"late.example": 1, otherDomain: 1, "idle.example": 0} {
		if got := metricstest.Value(mfs, "adhocd_s2s_streams", map[string]string{"domain": d}); got != want {
			t.Errorf("streams of %s: %v, want %v", d, got, want)
		}
	}

	// Between rankings: late's traffic is its own, idle's is other's.
	clock.advance(10 * time.Second)
	m.stanza("late.example", dirIn, 7)
	m.stanza("idle.example", dirIn, 4)
	m.bounce("idle.example", stanza.RemoteServerTimeout, 2)
	m.bounce("late.example", stanza.RemoteServerTimeout, 1)
	vals := gather()
	expect("after", vals, map[seriesID]float64{
		in("late.example"): 7, in("idle.example"): 5, in(otherDomain): 210,
		{"adhocd_s2s_bounced_total", otherDomain, "remote-server-timeout"}:    2,
		{"adhocd_s2s_bounced_total", "late.example", "remote-server-timeout"}: 1,
		{"adhocd_s2s_bounced_total", "idle.example", "remote-server-timeout"}: gone,
	})

	// The next ranking: idle's series is gone, the others go on.
	clock.advance(time.Minute)
	m.stanza("late.example", dirIn, 1)
	vals = gather()
	expect("next ranking", vals, map[seriesID]float64{in("late.example"): 8, in("idle.example"): gone, out("idle.example"): gone, in(otherDomain): 210})
	if got := domains(vals, "adhocd_s2s_stanzas_total"); len(got) != 3 {
		t.Errorf("stanzas domains: %v, want early, late and other", got)
	}
	check.conserved(map[[2]string]float64{
		{"adhocd_s2s_stanzas_total", dirIn}:                   5 + 3 + 3 + 200 + 7 + 4 + 1,
		{"adhocd_s2s_stanzas_total", dirOut}:                  210,
		{"adhocd_s2s_bounced_total", "remote-server-timeout"}: 3,
	})
}

// TestLabelRegained: a domain that wins its label back at the ranking
// after it lost it, while its series is still reported frozen, resumes
// the series where it stopped, so that it never goes down; one that wins
// it back later, after its series was missing from a collection, starts
// again from 0, as a new series (Prometheus saw it go stale, and a delta
// exporter forgot it).
func TestLabelRegained(t *testing.T) {
	clock := newFakeClock()
	m, tel := testInstruments(t, 1, clock, nil)
	check := newMonotonic(t)
	in := func(d string) seriesID { return seriesID{"adhocd_s2s_stanzas_total", d, dirIn} }
	step := func(counts map[string]int, want map[seriesID]float64, gone ...seriesID) {
		t.Helper()
		for d, n := range counts {
			m.stanza(d, dirIn, n)
		}
		clock.advance(time.Minute)
		vals := check.observe(metricstest.Gather(t, tel), nil)
		for id, w := range want {
			if got, ok := vals[id]; !ok || got != w {
				t.Errorf("%v = %v (reported: %v), want %v", id, got, ok, w)
			}
		}
		for _, id := range gone {
			if got, ok := vals[id]; ok {
				t.Errorf("%v is reported (%v), want it gone", id, got)
			}
		}
	}
	m.authenticated("a.example", dirIn, methodDialback, true)
	m.authenticated("b.example", dirIn, methodDialback, true) // no label left
	// b takes a's label; a's series is frozen at 5.
	step(map[string]int{"a.example": 5, "b.example": 100}, map[seriesID]float64{in("a.example"): 5, in("b.example"): 0, in(otherDomain): 100})
	// a wins it back at once: its series goes on from 5, b's is frozen.
	step(map[string]int{"a.example": 10000, "b.example": 3}, map[seriesID]float64{in("a.example"): 5, in("b.example"): 3, in(otherDomain): 10100})
	step(map[string]int{"a.example": 7}, map[seriesID]float64{in("a.example"): 12, in(otherDomain): 10100}, in("b.example"))
	// b is busier for long enough to take the label, then a wins it back
	// after its series went missing: a starts again from 0.
	for range 20 {
		m.stanza("b.example", dirIn, 100000)
		clock.advance(time.Minute)
		check.observe(metricstest.Gather(t, tel), nil)
	}
	if got := m.labels.labelledDomains(); !got["b.example"] {
		t.Fatalf("labels after b's traffic: %v", got)
	}
	for range 40 {
		m.stanza("a.example", dirIn, 1000000)
		clock.advance(time.Minute)
		check.observe(metricstest.Gather(t, tel), nil)
		if m.labels.labelledDomains()["a.example"] {
			break
		}
	}
	if got := m.labels.labelledDomains(); !got["a.example"] {
		t.Fatalf("labels after a's traffic: %v", got)
	}
	step(map[string]int{"a.example": 2}, map[seriesID]float64{in("a.example"): 2})
	if check.ended < 3 {
		t.Errorf("%d series ended, want a's twice and b's", check.ended)
	}
}

// TestCountersMonotonic: over many collections, while the busiest
// domains change, each exported series of the domain-labelled counters
// only grows while it is reported (and "other" always), a series that
// appears holds no more than what its domain did since the last
// collection, every count is exported exactly once, the busiest domains
// hold the labels at the end of each phase, and there are never more than
// N labels, or N more reported frozen, plus "other".
func TestCountersMonotonic(t *testing.T) {
	const n, all, phase, steps = 3, 12, 20, 300
	clock := newFakeClock()
	m, tel := testInstruments(t, n, clock, nil)
	check := newMonotonic(t)
	rng := rand.New(rand.NewPCG(1, 2))
	name := func(i int) string { return fmt.Sprintf("d%02d.example", i) }
	for i := range all {
		m.authenticated(name(i), dirIn, methodDialback, true)
	}
	counted := map[[2]string]float64{}
	conds := []stanza.Condition{stanza.RemoteServerTimeout, stanza.ResourceConstraint, stanza.Forbidden}
	swaps, prevLabels := 0, m.labels.labelledDomains()
	for step := range steps {
		busy := map[string]bool{}
		for j := range n {
			busy[name((step/phase*n+j)%all)] = true
		}
		since := map[seriesID]float64{}
		for i := range all {
			d := name(i)
			k := rng.IntN(3)
			if busy[d] {
				k = 40 + rng.IntN(20)
			}
			for range k {
				dir := dirIn
				if rng.IntN(2) == 0 {
					dir = dirOut
				}
				m.stanza(d, dir, 1)
				since[seriesID{"adhocd_s2s_stanzas_total", d, dir}]++
				counted[[2]string{"adhocd_s2s_stanzas_total", dir}]++
			}
			if rng.IntN(4) == 0 {
				cond := conds[rng.IntN(len(conds))]
				m.bounce(d, cond, 1)
				since[seriesID{"adhocd_s2s_bounced_total", d, string(cond)}]++
				counted[[2]string{"adhocd_s2s_bounced_total", string(cond)}]++
			}
		}
		m.bounce("never.example", stanza.RemoteServerNotFound, 1) // never in the table
		counted[[2]string{"adhocd_s2s_bounced_total", "remote-server-not-found"}]++
		// Mostly a minute apart; every fifth collection comes sooner, and
		// does not rank.
		if step%5 == 4 {
			clock.advance(20 * time.Second)
		} else {
			clock.advance(time.Minute)
		}
		vals := check.observe(metricstest.Gather(t, tel), since)
		check.conserved(counted)
		for family := range labelledFamilies {
			if got := domains(vals, family); len(got) > 2*n+1 {
				t.Fatalf("step %d: %s has %d domain labels: %v", step, family, len(got), got)
			}
		}
		labels := m.labels.labelledDomains()
		if len(labels) != n {
			t.Fatalf("step %d: %d domains labelled, want %d: %v", step, len(labels), n, labels)
		}
		for d := range labels {
			if !prevLabels[d] {
				swaps++
			}
		}
		prevLabels = labels
		if step%phase == phase-1 && fmt.Sprint(labels) != fmt.Sprint(busy) {
			t.Errorf("step %d, end of a phase: labelled %v, the busiest are %v", step, labels, busy)
		}
	}
	if swaps < steps/phase {
		t.Errorf("%d labels changed hands over %d phases", swaps, steps/phase)
	}
	if check.ended == 0 {
		t.Error("no series ever ended: the labels did not move")
	}
	t.Logf("%d collections, %d labels changed hands, %d series ended", check.collections, swaps, check.ended)
}

// TestNoDomainLabels: with s2s.metrics_domains 0 every domain counts under
// "other", whatever its traffic and however many rankings pass, and the
// table follows none.
func TestNoDomainLabels(t *testing.T) {
	clock := newFakeClock()
	conns := []Conn{{Remote: "a.example"}, {Remote: "b.example", Inbound: true}}
	m, tel := testInstruments(t, 0, clock, func() []Conn { return conns })
	check := newMonotonic(t)
	for step := range 5 {
		for _, d := range []string{"a.example", "b.example"} {
			m.authenticated(d, dirIn, methodExternal, true)
			m.stanza(d, dirIn, 10*(step+1))
			m.bounce(d, stanza.RemoteServerTimeout, 1)
		}
		clock.advance(time.Minute)
		mfs := metricstest.Gather(t, tel)
		vals := check.observe(mfs, nil)
		for _, family := range []string{"adhocd_s2s_stanzas_total", "adhocd_s2s_bounced_total", "adhocd_s2s_streams"} {
			for _, s := range mfs[family].GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "domain" && l.GetValue() != otherDomain {
						t.Errorf("step %d: %s has domain %q", step, family, l.GetValue())
					}
				}
			}
		}
		want := float64(2 * 10 * (step + 1) * (step + 2) / 2)
		if got := vals[seriesID{"adhocd_s2s_stanzas_total", otherDomain, dirIn}]; got != want {
			t.Errorf("step %d: other in = %v, want %v", step, got, want)
		}
		if got := metricstest.Value(mfs, "adhocd_s2s_streams", map[string]string{"domain": otherDomain}); got != 2 {
			t.Errorf("step %d: streams under other: %v, want 2", step, got)
		}
	}
	if n := m.labels.size(); n != 0 {
		t.Errorf("the table follows %d domains with no labels to give", n)
	}
}

// TestTableBound: a thousand domains authenticating and trading a little
// never make the table follow more than max(4N, 64) domains; a busy domain
// keeps its label through the churn, and a busy one that comes in the
// middle of it is not evicted and takes the label of an idle one at the
// next ranking. Nothing counted is lost.
func TestTableBound(t *testing.T) {
	const n, rounds, perRound = 2, 10, 100
	clock := newFakeClock()
	m, tel := testInstruments(t, n, clock, nil)
	if m.labels.capacity != minTable {
		t.Fatalf("capacity %d with %d labels, want %d", m.labels.capacity, n, minTable)
	}
	check := newMonotonic(t)
	counted := map[[2]string]float64{}
	stanzas := func(d string, k int) {
		m.stanza(d, dirIn, k)
		counted[[2]string{"adhocd_s2s_stanzas_total", dirIn}] += float64(k)
	}
	m.authenticated("busy.example", dirIn, methodDialback, true)
	m.authenticated("quiet.example", dirIn, methodDialback, true)
	for r := range rounds {
		stanzas("busy.example", 500)
		if r == rounds/2 {
			m.authenticated("late.example", dirOut, methodDialback, true)
		}
		for i := range perRound {
			d := fmt.Sprintf("r%d-%d.example", r, i)
			if i%2 == 0 {
				m.authenticated(d, dirIn, methodDialback, true)
			}
			stanzas(d, 1) // a stanza on an authenticated stream enters it too
			if r >= rounds/2 && i%10 == 0 {
				stanzas("late.example", 50)
			}
			if size := m.labels.size(); size > minTable {
				t.Fatalf("round %d: the table follows %d domains", r, size)
			}
		}
		clock.advance(time.Minute)
		vals := check.observe(metricstest.Gather(t, tel), nil)
		check.conserved(counted)
		labels := m.labels.labelledDomains()
		if len(labels) != n || !labels["busy.example"] {
			t.Fatalf("round %d: labelled %v, want busy.example and one more", r, labels)
		}
		if r >= rounds/2 && !labels["late.example"] {
			t.Errorf("round %d: late.example, busy since round %d, has no label: %v", r, rounds/2, labels)
		}
		if got := domains(vals, "adhocd_s2s_stanzas_total"); len(got) > 2*n+1 {
			t.Errorf("round %d: %d domain labels: %v", r, len(got), got)
		}
	}
}

// TestInstrumentsConcurrent: streams authenticating, counting and
// bouncing at once, while collections run and rank, never break the
// bound, the series only grow while reported, and every count is exported
// exactly once (run with -race).
func TestInstrumentsConcurrent(t *testing.T) {
	const n, workers, ops, all = 4, 8, 20000, 40
	clock := newFakeClock()
	var mu sync.Mutex
	var conns []Conn
	m, tel := testInstruments(t, n, clock, func() []Conn { mu.Lock(); defer mu.Unlock(); return slices.Clone(conns) })
	var stanzasIn, stanzasOut, bounced atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range ops {
				// Traffic drifts from domain to domain over time.
				d := fmt.Sprintf("d%d.example", (rng.IntN(8)+i*all/ops)%all)
				switch rng.IntN(10) {
				case 0:
					m.authenticated(d, dirIn, methodDialback, true)
					mu.Lock()
					conns = append(conns[len(conns)/all*all:], Conn{Remote: d, Inbound: true})
					mu.Unlock()
				case 1:
					m.bounce(d, stanza.RemoteServerTimeout, 2)
					bounced.Add(2)
				case 2:
					if got := m.labels.of(d); got != d && got != otherDomain {
						t.Errorf("of(%q) = %q", d, got)
					}
				case 3, 4, 5:
					m.stanza(d, dirOut, 1)
					stanzasOut.Add(1)
				default:
					m.stanza(d, dirIn, 1)
					stanzasIn.Add(1)
				}
			}
		})
	}
	check := newMonotonic(t)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for stop := false; !stop; {
		select {
		case <-done:
			stop = true
		default:
		}
		clock.advance(time.Minute)
		vals := check.observe(metricstest.Gather(t, tel), nil)
		if got := domains(vals, "adhocd_s2s_stanzas_total"); len(got) > 2*n+1 {
			t.Errorf("%d domain labels: %v", len(got), got)
		}
		if got := len(m.labels.labelledDomains()); got > n {
			t.Errorf("%d domains labelled, bound %d", got, n)
		}
	}
	check.conserved(map[[2]string]float64{
		{"adhocd_s2s_stanzas_total", dirIn}:                   float64(stanzasIn.Load()),
		{"adhocd_s2s_stanzas_total", dirOut}:                  float64(stanzasOut.Load()),
		{"adhocd_s2s_bounced_total", "remote-server-timeout"}: float64(bounced.Load()),
	})
	t.Logf("%d collections, %d series ended", check.collections, check.ended)
}
