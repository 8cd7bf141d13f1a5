package s2s

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"mellium.im/xmpp/stanza"
)

// otherDomain is the domain label of the remote domains that have none of
// their own.
const otherDomain = "other"

// Values of the direction, method and outcome labels.
const (
	dirIn          = "in"
	dirOut         = "out"
	methodExternal = "external"
	methodDialback = "dialback"
	outcomeSuccess = "success"
	outcomeFailure = "failure"
)

// How the domain labels are ranked (domainTable).
const (
	// rankEvery is the least time between two rankings; they are made at
	// collection, so never more often than the metrics are read.
	rankEvery = time.Minute
	// activityHalfLife is how fast a domain's past traffic stops counting
	// towards its rank: the traffic of ten minutes ago weighs half as much
	// as this minute's.
	activityHalfLife = 10 * time.Minute
	// swapMargin is how much busier than a labelled domain an unlabelled
	// one must be to take its label, so that two domains of about the same
	// traffic do not swap the label at every ranking.
	swapMargin = 1.25
	// minTable is the least number of domains the table follows (when
	// labels are given at all); it follows 4 per label past that.
	minTable = 64
)

// series is one series of a domain-labelled counter, but for the domain.
type series struct {
	bounced bool   // adhocd.s2s.bounced; else adhocd.s2s.stanzas
	attr    string // the condition (bounced) or the direction (stanzas)
}

// domainEntry is a remote domain the table follows.
type domainEntry struct {
	name     string
	labelled bool
	own      map[series]int64 // counted under its own label since it got it; nil without
	recent   int64            // counted since the last ranking
	score    float64          // decayed traffic, as of the last ranking
	seen     uint64           // the ranking epoch in which it last counted or authenticated
}

// domainTable gives the remote domains their metric label, and counts the
// domain-labelled counters (adhocd.s2s.stanzas and adhocd.s2s.bounced) for
// them, so that the metrics' cardinality stays bounded whatever domains
// connect (s2s.metrics_domains): at most max domains have a label of their
// own, the busiest, and every other is counted under "other".
//
// Only a domain that authenticated, in either direction, enters the table
// (admit; count, for stanzas exchanged on an authenticated stream), so a
// scanner or a domain that could not be reached never takes a label. The
// table follows at most capacity domains, max(4·max, 64): entering a full
// table evicts the unlabelled domain that was active least recently, and
// its counts, which were under "other", stay there. While labels are left
// a domain gets one when it enters. Past that, at most once every
// rankEvery, at collection, each domain's traffic (stanzas and bounces)
// decays into a score with a half-life of activityHalfLife; the busiest
// unlabelled domains then take the labels of the least busy labelled ones
// they beat by swapMargin.
//
// Each exported series only ever grows while it is reported, so that
// Prometheus never takes a label change for a counter reset. "other"
// counts, cumulatively, everything counted for a domain without a label.
// A domain's series count what was counted for it since it got its label,
// from 0. Once it loses the label its counts go to "other", and its series
// are still reported, frozen, until the next ranking (so that what it
// counted since the last collection is read), then no more: Prometheus
// marks them stale. A domain that wins its label back at that next ranking
// resumes its series where they stopped; one that wins it back later,
// after its series were missing from a collection, starts them again from
// 0, as new series, which Prometheus reads as the counter reset it is
// (its increase counted from 0, rightly) and a delta exporter, which
// forgot them, rightly too. A domain evicted from the table, and back,
// starts from 0 likewise.
//
// The work of a collection is bounded by the table: a ranking sorts it,
// and the series reported are those of at most 2·max domains (the
// labelled, and those that lost their label at the last ranking) and
// "other". Counting takes the table's lock and a map lookup; a domain
// entering a full table scans it once for the entry to evict.
//
// It is safe for concurrent use.
type domainTable struct {
	max, capacity int
	now           func() time.Time

	mu       sync.Mutex
	entries  map[string]*domainEntry
	labelled int
	other    map[series]int64
	retired  map[string]map[series]int64 // the series of the domains that lost their label at the last ranking, frozen
	ranked   time.Time                   // the last ranking, or the table's creation
	epoch    uint64                      // rankings made
}

// newDomainTable returns a table of n labels (none if n is not positive)
// whose rankings read the time from now.
func newDomainTable(n int, now func() time.Time) *domainTable {
	n = max(n, 0)
	capacity := 0
	switch {
	case n > math.MaxInt/4:
		capacity = math.MaxInt
	case n > 0:
		capacity = max(4*n, minTable)
	}
	return &domainTable{max: n, capacity: capacity, now: now, entries: map[string]*domainEntry{},
		other: map[series]int64{}, retired: map[string]map[series]int64{}, ranked: now()}
}

// admit enters domain, which has just authenticated, into the table,
// giving it a label of its own if one is left, and returns its label.
func (t *domainTable) admit(domain string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.enter(domain); e != nil && e.labelled {
		return domain
	}
	return otherDomain
}

// of returns domain's label now: its own if it has one, else "other". It
// never gives a label.
func (t *domainTable) of(domain string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.label(domain)
}

// label is of, with t.mu held.
func (t *domainTable) label(domain string) string {
	if e := t.entries[domain]; e != nil && e.labelled {
		return domain
	}
	return otherDomain
}

// count counts n under s for domain: under its own label if it has one,
// else under "other". enter says that domain authenticated, so that it may
// enter the table; a domain that is not in the table and may not enter is
// counted under "other".
func (t *domainTable) count(domain string, s series, n int64, enter bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[domain]
	if e == nil && enter {
		e = t.enter(domain)
	}
	if e == nil {
		t.other[s] += n
		return
	}
	e.recent += n
	e.seen = t.epoch
	if e.labelled {
		e.own[s] += n
	} else {
		t.other[s] += n
	}
}

// enter returns domain's entry, making it if need be; nil if domain may
// not have a label. t.mu is held.
func (t *domainTable) enter(domain string) *domainEntry {
	if t.max == 0 || domain == "" || domain == otherDomain {
		return nil
	}
	if e := t.entries[domain]; e != nil {
		e.seen = t.epoch
		return e
	}
	if len(t.entries) >= t.capacity && !t.evict() {
		return nil
	}
	e := &domainEntry{name: domain, seen: t.epoch}
	t.entries[domain] = e
	if t.labelled < t.max {
		t.grant(e, t.retired)
	}
	return e
}

// evict takes out of the table the unlabelled domain that was active least
// recently (the least busy of those), and reports whether there was one.
// t.mu is held.
func (t *domainTable) evict() bool {
	var victim *domainEntry
	for _, e := range t.entries {
		if e.labelled {
			continue
		}
		if victim == nil || e.seen < victim.seen ||
			e.seen == victim.seen && e.score+float64(e.recent) < victim.score+float64(victim.recent) {
			victim = e
		}
	}
	if victim == nil {
		return false
	}
	delete(t.entries, victim.name)
	return true
}

// grant gives e its label. Its series resume from their value in retired
// if it lost the label at the last ranking, and start from 0 otherwise.
// t.mu is held.
func (t *domainTable) grant(e *domainEntry, from map[string]map[series]int64) {
	e.labelled = true
	t.labelled++
	if own, ok := from[e.name]; ok {
		e.own = own
		delete(from, e.name)
		return
	}
	e.own = map[series]int64{{attr: dirIn}: 0, {attr: dirOut}: 0}
}

// revoke takes e's label back; its series are reported, frozen, until the
// next ranking. t.mu is held.
func (t *domainTable) revoke(e *domainEntry) {
	e.labelled = false
	t.labelled--
	t.retired[e.name] = e.own
	e.own = nil
}

// rank updates the domains' scores and moves the labels to the busiest
// domains, if rankEvery has passed since the last ranking. t.mu is held.
func (t *domainTable) rank() {
	now := t.now()
	elapsed := now.Sub(t.ranked)
	if elapsed < rankEvery {
		return
	}
	t.ranked = now
	t.epoch++
	decay := math.Exp2(-elapsed.Seconds() / activityHalfLife.Seconds())
	var labelled, unlabelled []*domainEntry
	for _, e := range t.entries {
		e.score = e.score*decay + float64(e.recent)
		e.recent = 0
		if e.labelled {
			labelled = append(labelled, e)
		} else {
			unlabelled = append(unlabelled, e)
		}
	}
	// The series retired at the last ranking are reported no more, unless
	// their domain wins its label back now.
	last := t.retired
	t.retired = map[string]map[series]int64{}
	if len(unlabelled) == 0 {
		return
	}
	byScore := func(a, b *domainEntry) int {
		return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.name, b.name))
	}
	slices.SortFunc(labelled, byScore)                                                // least busy first
	slices.SortFunc(unlabelled, func(a, b *domainEntry) int { return byScore(b, a) }) // busiest first
	for len(unlabelled) > 0 && t.labelled < t.max {
		t.grant(unlabelled[0], last)
		unlabelled = unlabelled[1:]
	}
	for i := 0; i < len(labelled) && i < len(unlabelled); i++ {
		if !(unlabelled[i].score > swapMargin*labelled[i].score) {
			break
		}
		t.revoke(labelled[i])
		t.grant(unlabelled[i], last)
	}
}

// observation is one value of a domain-labelled counter to report.
type observation struct {
	domain string
	series
	value int64
}

// collect ranks the domains if it is time to, and returns the values of
// the domain-labelled counters to report, and the labels of the domains
// of the streams conns.
func (t *domainTable) collect(conns []Conn) (obs []observation, labels []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rank()
	for _, e := range t.entries {
		if e.labelled {
			for s, v := range e.own {
				obs = append(obs, observation{e.name, s, v})
			}
		}
	}
	for d, own := range t.retired {
		for s, v := range own {
			obs = append(obs, observation{d, s, v})
		}
	}
	for s, v := range t.other {
		obs = append(obs, observation{otherDomain, s, v})
	}
	labels = make([]string, len(conns))
	for i, c := range conns {
		labels[i] = t.label(c.Remote)
	}
	return obs, labels
}

// instruments are the pool's metrics (docs/observability.md). The
// domain-labelled counters are observable: the table counts them, and
// reports them at collection.
type instruments struct {
	labels           *domainTable
	stanzas, bounced metric.Int64ObservableCounter
	auth, refused    metric.Int64Counter
	reg              metric.Registration // the observable instruments' callback; nil if none
}

// newInstruments makes the pool's instruments on meter (nil: a meter that
// records nothing), with at most maxDomains domain labels. The streams
// gauge reads list at each collection.
func newInstruments(meter metric.Meter, maxDomains int, list func() []Conn) (*instruments, error) {
	return newInstrumentsWith(meter, newDomainTable(maxDomains, time.Now), list)
}

// newInstrumentsWith is newInstruments with the table that gives the
// domain labels.
func newInstrumentsWith(meter metric.Meter, labels *domainTable, list func() []Conn) (*instruments, error) {
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	m := &instruments{labels: labels}
	var errs [5]error
	m.stanzas, errs[0] = meter.Int64ObservableCounter("adhocd.s2s.stanzas",
		metric.WithDescription("Stanzas exchanged with remote servers, by domain (the s2s.metrics_domains busiest, the rest under other) and direction: in (received and routed), out (written to the remote server)."))
	m.bounced, errs[1] = meter.Int64ObservableCounter("adhocd.s2s.bounced",
		metric.WithDescription("Stanzas for remote servers that were not delivered but answered to their local sender, by domain and condition."))
	m.auth, errs[2] = meter.Int64Counter("adhocd.s2s.auth",
		metric.WithDescription("Server-to-server authentications, by direction, method (external, dialback) and outcome (success, failure)."))
	m.refused, errs[3] = meter.Int64Counter("adhocd.s2s.refused",
		metric.WithDescription("Inbound streams closed and dialback requests refused by this server, by reason: the condition sent."))
	streams, err := meter.Int64ObservableGauge("adhocd.s2s.streams",
		metric.WithDescription("Server-to-server streams open now, by domain and direction (in, out), those still negotiating included."))
	errs[4] = err
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		conns := list() // before the table's lock: list takes the pool's
		obs, labels := m.labels.collect(conns)
		for _, v := range obs {
			if v.bounced {
				o.ObserveInt64(m.bounced, v.value, metric.WithAttributes(attribute.String("domain", v.domain), attribute.String("condition", v.attr)))
			} else {
				o.ObserveInt64(m.stanzas, v.value, metric.WithAttributes(attribute.String("domain", v.domain), attribute.String("direction", v.attr)))
			}
		}
		type key struct{ domain, direction string }
		counts := map[key]int64{}
		for i, c := range conns {
			k := key{labels[i], dirOut}
			if c.Inbound {
				k.direction = dirIn
			}
			counts[k]++
		}
		for k, n := range counts {
			o.ObserveInt64(streams, n, metric.WithAttributes(attribute.String("domain", k.domain), attribute.String("direction", k.direction)))
		}
		return nil
	}, m.stanzas, m.bounced, streams)
	if err != nil {
		return nil, err
	}
	m.reg = reg
	return m, nil
}

// stop unregisters the observable instruments' callback.
func (m *instruments) stop() {
	if m.reg != nil {
		_ = m.reg.Unregister()
	}
}

// stanza counts n stanzas exchanged with domain. Both callers count on a
// stream that authenticated domain, so domain may enter the table.
func (m *instruments) stanza(domain, direction string, n int) {
	if n <= 0 {
		return
	}
	m.labels.count(domain, series{attr: direction}, int64(n), true)
}

// bounce counts n stanzas for domain answered with cond. domain may never
// have authenticated (it could not be reached), so it does not enter the
// table: one that is not in it is counted under "other".
func (m *instruments) bounce(domain string, cond stanza.Condition, n int) {
	if n <= 0 {
		return
	}
	m.labels.count(domain, series{bounced: true, attr: string(cond)}, int64(n), false)
}

// bounceErr counts a stanza HandleStanza refused with err, when err is
// the answer to its sender.
func (m *instruments) bounceErr(domain string, err error) {
	var se stanza.Error
	if errors.As(err, &se) {
		m.bounce(domain, se.Condition, 1)
	}
}

// authenticated counts an authentication with domain; a success enters
// the domain into the label table (and gives it a label, if one is left).
// The counter itself has no domain label.
func (m *instruments) authenticated(domain, direction, method string, ok bool) {
	outcome := outcomeFailure
	if ok {
		outcome = outcomeSuccess
		m.labels.admit(domain)
	}
	m.auth.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("direction", direction), attribute.String("method", method), attribute.String("outcome", outcome)))
}

// refuse counts an inbound stream or request refused, with the condition
// sent. The counter has no domain label: the domain is not authenticated.
func (m *instruments) refuse(reason string) {
	m.refused.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}
