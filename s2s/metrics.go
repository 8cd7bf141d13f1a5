package s2s

import (
	"context"
	"errors"
	"sync"

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

// domainLabels maps a remote domain to its metric label, so that the
// metrics' cardinality stays bounded whatever domains connect
// (s2s.metrics_domains): the first max domains that authenticate, in
// either direction, keep their own label for the process's life; every
// other domain, and one that never authenticated (a scanner, a name that
// could not be reached), is counted under "other". A label is never taken
// back, so that a counter's series never moves between labels and its
// rates stay right. It is safe for concurrent use.
type domainLabels struct {
	max  int
	mu   sync.RWMutex
	kept map[string]struct{}
}

func newDomainLabels(max int) *domainLabels {
	return &domainLabels{max: max, kept: map[string]struct{}{}}
}

// admit gives domain, which has just authenticated, a label of its own if
// one is left, and returns its label.
func (l *domainLabels) admit(domain string) string {
	if l.of(domain) == domain {
		return domain
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.kept[domain]; ok {
		return domain
	}
	if domain == "" || domain == otherDomain || len(l.kept) >= l.max {
		return otherDomain
	}
	l.kept[domain] = struct{}{}
	return domain
}

// of returns domain's label: its own if it was admitted, else "other". It
// never gives a label.
func (l *domainLabels) of(domain string) string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if _, ok := l.kept[domain]; ok {
		return domain
	}
	return otherDomain
}

// instruments are the pool's metrics (docs/observability.md).
type instruments struct {
	labels                          *domainLabels
	stanzas, bounced, auth, refused metric.Int64Counter
	gauge                           metric.Registration // the streams gauge's callback; nil if none
}

// newInstruments makes the pool's instruments on meter (nil: a meter that
// records nothing). The streams gauge reads list at each collection.
func newInstruments(meter metric.Meter, maxDomains int, list func() []Conn) (*instruments, error) {
	if meter == nil {
		meter = noop.NewMeterProvider().Meter("")
	}
	m := &instruments{labels: newDomainLabels(maxDomains)}
	var errs [5]error
	m.stanzas, errs[0] = meter.Int64Counter("adhocd.s2s.stanzas",
		metric.WithDescription("Stanzas exchanged with remote servers, by domain (s2s.metrics_domains of them, the rest under other) and direction: in (received and routed), out (written to the remote server)."))
	m.bounced, errs[1] = meter.Int64Counter("adhocd.s2s.bounced",
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
		type key struct{ domain, direction string }
		counts := map[key]int64{}
		for _, c := range list() {
			k := key{m.labels.of(c.Remote), dirOut}
			if c.Inbound {
				k.direction = dirIn
			}
			counts[k]++
		}
		for k, n := range counts {
			o.ObserveInt64(streams, n, metric.WithAttributes(attribute.String("domain", k.domain), attribute.String("direction", k.direction)))
		}
		return nil
	}, streams)
	if err != nil {
		return nil, err
	}
	m.gauge = reg
	return m, nil
}

// stop unregisters the streams gauge's callback.
func (m *instruments) stop() {
	if m.gauge != nil {
		_ = m.gauge.Unregister()
	}
}

// stanza counts n stanzas exchanged with domain.
func (m *instruments) stanza(domain, direction string, n int) {
	m.stanzas.Add(context.Background(), int64(n), metric.WithAttributes(
		attribute.String("domain", m.labels.of(domain)), attribute.String("direction", direction)))
}

// bounce counts n stanzas for domain answered with cond.
func (m *instruments) bounce(domain string, cond stanza.Condition, n int) {
	if n <= 0 {
		return
	}
	m.bounced.Add(context.Background(), int64(n), metric.WithAttributes(
		attribute.String("domain", m.labels.of(domain)), attribute.String("condition", string(cond))))
}

// bounceErr counts a stanza HandleStanza refused with err, when err is
// the answer to its sender.
func (m *instruments) bounceErr(domain string, err error) {
	var se stanza.Error
	if errors.As(err, &se) {
		m.bounce(domain, se.Condition, 1)
	}
}

// authenticated counts an authentication with domain; a success gives the
// domain its label, if one is left.
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
// sent.
func (m *instruments) refuse(reason string) {
	m.refused.Add(context.Background(), 1, metric.WithAttributes(attribute.String("reason", reason)))
}
