package s2s

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/metrics/metricstest"
)

// TestDomainLabels: the first domains that authenticate keep a label of
// their own, up to the bound, for good; the others, and domains that
// never authenticated, are "other"; 0 puts every domain under "other".
func TestDomainLabels(t *testing.T) {
	l := newDomainLabels(2)
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
	none := newDomainLabels(0)
	if got := none.admit("a.example"); got != otherDomain {
		t.Errorf("with 0 labels, admit gave %q", got)
	}
	if got := none.of("a.example"); got != otherDomain {
		t.Errorf("with 0 labels, of gave %q", got)
	}
}

// TestDomainLabelsConcurrent: domains authenticating at once never get
// more labels than the bound, and each keeps the answer it got first.
func TestDomainLabelsConcurrent(t *testing.T) {
	const max, domains = 20, 50
	l := newDomainLabels(max)
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
	// Sticky: admitting again changes nothing.
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
	tel := metricstest.New(t)
	var conns []Conn
	m, err := newInstruments(tel.MeterProvider().Meter("github.com/adhocd/adhocd/s2s"), 1, func() []Conn { return conns })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.stop)
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
