package s2s_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/s2s"
)

// fakeDNS answers SRV and address lookups from tables and logs every
// question. Names are the rooted forms that the Resolver asks for; a name
// missing from a table does not exist.
type fakeDNS struct {
	srv   map[string]srvReply  // "_xmpp-server._tcp.a.test."
	hosts map[string]hostReply // "xmpp.a.test."

	mu  sync.Mutex
	log []string
}

type srvReply struct {
	recs []*net.SRV
	err  error
}

type hostReply struct {
	addrs []string
	err   error
}

func (f *fakeDNS) record(q string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, q)
}

func (f *fakeDNS) queries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Clone(f.log)
	slices.Sort(out)
	return out
}

func (f *fakeDNS) LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error) {
	q := "_" + service + "._" + proto + "." + name
	f.record("SRV " + q)
	r, ok := f.srv[q]
	if !ok {
		return "", nil, nxdomain(q)
	}
	if r.err == errHang {
		<-ctx.Done()
		return "", nil, &net.DNSError{Err: "i/o timeout", Name: q, IsTimeout: true}
	}
	return q, r.recs, r.err
}

func (f *fakeDNS) LookupHost(ctx context.Context, host string) ([]string, error) {
	f.record("HOST " + host)
	r, ok := f.hosts[host]
	if !ok {
		return nil, nxdomain(host)
	}
	return r.addrs, r.err
}

// srvOnly hides fakeDNS's LookupHost: a Resolver over it keeps host names.
type srvOnly struct{ s2s.SRVLookuper }

// errHang makes the fake block until the lookup's context ends.
var errHang = errors.New("hang")

func nxdomain(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

func servfail(name string) error {
	return &net.DNSError{Err: "server misbehaving", Name: name, IsTemporary: true}
}

func timeout(name string) error {
	return &net.DNSError{Err: "i/o timeout", Name: name, IsTimeout: true}
}

func srv(prio, weight, port uint16, target string) *net.SRV {
	return &net.SRV{Target: target, Port: port, Priority: prio, Weight: weight}
}

// show renders targets for comparison: "addr name source [tls]".
func show(ts []s2s.Target) []string {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		s := t.Addr() + " " + t.Name + " " + t.Source.String()
		if t.DirectTLS {
			s += " tls"
		}
		out = append(out, s)
	}
	return out
}

// TestResolve covers each way to a target list, and each way to none, with
// the lookups each one makes (and so the ones it must not make).
func TestResolve(t *testing.T) {
	const (
		plainB  = "SRV _xmpp-server._tcp.b.test."
		directB = "SRV _xmpps-server._tcp.b.test."
	)
	tests := []struct {
		name    string
		hosts   map[string]string
		srv     map[string]srvReply
		addrs   map[string]hostReply
		srvOnly bool   // the DNS has no LookupHost
		domain  string // b.test when empty
		want    []string
		wantErr error  // errors.Is
		errText string // and in the message
		queries []string
	}{{
		name:    "static map, IP address",
		hosts:   map[string]string{"b.test": "127.0.0.1:5299", "c.test": "127.0.0.9:5269"},
		want:    []string{"127.0.0.1:5299 127.0.0.1 static"},
		queries: []string{},
	}, {
		name:    "static map, direct TLS",
		hosts:   map[string]string{"b.test": "tls://127.0.0.1:5270"},
		want:    []string{"127.0.0.1:5270 127.0.0.1 static tls"},
		queries: []string{},
	}, {
		name:    "static map, any case and a trailing dot",
		hosts:   map[string]string{"B.Test.": "[::1]:5299"},
		domain:  "b.TEST.",
		want:    []string{"[::1]:5299 ::1 static"},
		queries: []string{},
	}, {
		name:    "static map, host name resolved as the system does (not rooted)",
		hosts:   map[string]string{"b.test": "peer.internal:5270"},
		addrs:   map[string]hostReply{"peer.internal": {addrs: []string{"10.0.0.5", "fd00::5"}}},
		want:    []string{"10.0.0.5:5270 peer.internal static", "[fd00::5]:5270 peer.internal static"},
		queries: []string{"HOST peer.internal"},
	}, {
		name:    "IPv4 domain",
		domain:  "192.0.2.7",
		want:    []string{"192.0.2.7:5269 192.0.2.7 ip"},
		queries: []string{},
	}, {
		name:    "IPv6 domain in brackets",
		domain:  "[2001:DB8::1]",
		want:    []string{"[2001:db8::1]:5269 2001:db8::1 ip"},
		queries: []string{},
	}, {
		name: "SRV of both services merged by priority",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {recs: []*net.SRV{srv(30, 0, 5269, "c.b.test."), srv(10, 0, 5269, "a.b.test.")}},
			"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{srv(20, 0, 5223, "B.b.test.")}},
		},
		addrs: map[string]hostReply{
			"a.b.test.": {addrs: []string{"192.0.2.1", "2001:db8::1"}},
			"b.b.test.": {addrs: []string{"192.0.2.2"}},
			"c.b.test.": {addrs: []string{"192.0.2.3"}},
		},
		want: []string{
			"192.0.2.1:5269 a.b.test srv",
			"[2001:db8::1]:5269 a.b.test srv",
			"192.0.2.2:5223 b.b.test srv tls",
			"192.0.2.3:5269 c.b.test srv",
		},
		queries: []string{"HOST a.b.test.", "HOST b.b.test.", "HOST c.b.test.", plainB, directB},
	}, {
		name: "direct TLS wins a lower priority",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {recs: []*net.SRV{srv(10, 0, 5269, "x.b.test.")}},
			"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{srv(0, 0, 443, "x.b.test.")}},
		},
		addrs: map[string]hostReply{"x.b.test.": {addrs: []string{"192.0.2.1"}}},
		want:  []string{"192.0.2.1:443 x.b.test srv tls", "192.0.2.1:5269 x.b.test srv"},
	}, {
		name: "without LookupHost the targets keep their names",
		srv: map[string]srvReply{
			"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{srv(5, 0, 5223, "tls.b.test.")}},
		},
		srvOnly: true,
		want:    []string{"tls.b.test:5223 tls.b.test srv tls"},
		queries: []string{plainB, directB},
	}, {
		name: "a repeated record counts once, at its best priority",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(20, 0, 5269, "x.b.test."), srv(10, 0, 5269, "x.b.test."), srv(15, 0, 5269, "y.b.test.")}},
		},
		srvOnly: true,
		want:    []string{"x.b.test:5269 x.b.test srv", "y.b.test:5269 y.b.test srv"},
	}, {
		name: "two names with one address give one target",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(10, 0, 5269, "x.b.test."), srv(20, 0, 5269, "y.b.test.")}},
		},
		addrs: map[string]hostReply{
			"x.b.test.": {addrs: []string{"192.0.2.1"}},
			"y.b.test.": {addrs: []string{"192.0.2.1", "192.0.2.2"}},
		},
		want: []string{"192.0.2.1:5269 x.b.test srv", "192.0.2.2:5269 y.b.test srv"},
	}, {
		name: "a target without address is skipped",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(10, 0, 5269, "gone.b.test."), srv(20, 0, 5269, "x.b.test.")}},
		},
		addrs: map[string]hostReply{"x.b.test.": {addrs: []string{"192.0.2.1"}}},
		want:  []string{"192.0.2.1:5269 x.b.test srv"},
	}, {
		name: "SRV targets without any address: no fallback to the domain",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(10, 0, 5269, "gone.b.test.")}},
		},
		addrs:   map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
		wantErr: s2s.ErrNoAddress,
		errText: "gone.b.test",
		queries: []string{"HOST gone.b.test.", plainB, directB},
	}, {
		name: "SRV records with port 0 only: no fallback",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(10, 0, 0, "x.b.test.")}},
		},
		addrs:   map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
		wantErr: s2s.ErrNoAddress,
		queries: []string{plainB, directB},
	}, {
		name: `a lone "." target: no service, no fallback`,
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(0, 0, 0, ".")}},
		},
		addrs:   map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
		wantErr: s2s.ErrNoService,
		queries: []string{plainB, directB},
	}, {
		name: `"." for direct TLS, records for STARTTLS`,
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {recs: []*net.SRV{srv(10, 0, 5269, "x.b.test.")}},
			"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{srv(0, 0, 0, ".")}},
		},
		addrs: map[string]hostReply{"x.b.test.": {addrs: []string{"192.0.2.1"}}},
		want:  []string{"192.0.2.1:5269 x.b.test srv"},
	}, {
		name: `"." for direct TLS and no STARTTLS records: no fallback (XEP-0368)`,
		srv: map[string]srvReply{
			"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{srv(0, 0, 0, ".")}},
		},
		addrs:   map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
		wantErr: s2s.ErrNoService,
		queries: []string{plainB, directB},
	}, {
		name: `"." beside other records is skipped`,
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(0, 0, 0, "."), srv(10, 0, 5269, "x.b.test.")}},
		},
		srvOnly: true,
		want:    []string{"x.b.test:5269 x.b.test srv"},
	}, {
		name:    "no SRV record: the domain's A/AAAA on 5269",
		addrs:   map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9", "2001:db8::9"}}},
		want:    []string{"192.0.2.9:5269 b.test fallback", "[2001:db8::9]:5269 b.test fallback"},
		queries: []string{"HOST b.test.", plainB, directB},
	}, {
		name:    "no SRV record and no LookupHost: the domain's name on 5269",
		srvOnly: true,
		want:    []string{"b.test:5269 b.test fallback"},
	}, {
		name:    "no SRV record and no address",
		wantErr: s2s.ErrNoAddress,
		errText: "b.test has no A or AAAA record",
		queries: []string{"HOST b.test.", plainB, directB},
	}, {
		name: "SRV answered by no server: fallback (RFC 6120 §3.2.1 step 9)",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {err: timeout("_xmpp-server._tcp.b.test.")},
			"_xmpps-server._tcp.b.test.": {err: timeout("_xmpps-server._tcp.b.test.")},
		},
		addrs: map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
		want:  []string{"192.0.2.9:5269 b.test fallback"},
	}, {
		name: "SERVFAIL for STARTTLS: an error, no fallback",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {err: servfail("_xmpp-server._tcp.b.test.")},
		},
		addrs:   map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
		errText: "lookup _xmpp-server._tcp.b.test: ",
		queries: []string{plainB, directB},
	}, {
		name: "SERVFAIL for direct TLS and nothing for STARTTLS: an error, no fallback",
		srv: map[string]srvReply{
			"_xmpps-server._tcp.b.test.": {err: servfail("_xmpps-server._tcp.b.test.")},
		},
		addrs:   map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
		errText: "lookup _xmpps-server._tcp.b.test: ",
		queries: []string{plainB, directB},
	}, {
		name: `SERVFAIL for STARTTLS and "." for direct TLS: the error, not "no service"`,
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {err: servfail("_xmpp-server._tcp.b.test.")},
			"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{srv(0, 0, 0, ".")}},
		},
		errText: "lookup _xmpp-server._tcp.b.test: ",
	}, {
		name: "SERVFAIL for direct TLS, records for STARTTLS",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {recs: []*net.SRV{srv(10, 0, 5269, "x.b.test.")}},
			"_xmpps-server._tcp.b.test.": {err: servfail("_xmpps-server._tcp.b.test.")},
		},
		srvOnly: true,
		want:    []string{"x.b.test:5269 x.b.test srv"},
	}, {
		name: "records that came with an error are used",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {
				recs: []*net.SRV{srv(10, 0, 5269, "x.b.test.")},
				err:  &net.DNSError{Err: "DNS response contained records which contain invalid names"},
			},
		},
		srvOnly: true,
		want:    []string{"x.b.test:5269 x.b.test srv"},
	}, {
		name: "an address lookup that fails is an error when nothing else is left",
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{srv(10, 0, 5269, "x.b.test.")}},
		},
		addrs:   map[string]hostReply{"x.b.test.": {err: servfail("x.b.test.")}},
		errText: "lookup x.b.test: ",
	}, {
		name:    "an internationalised domain must come as A-labels",
		domain:  "bücher.test",
		errText: "A-labels",
		queries: []string{},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dns := &fakeDNS{srv: tc.srv, hosts: tc.addrs}
			var lookuper s2s.SRVLookuper = dns
			if tc.srvOnly {
				lookuper = srvOnly{dns}
			}
			r, err := s2s.NewResolver(s2s.ResolverOptions{Hosts: tc.hosts, DNS: lookuper})
			if err != nil {
				t.Fatal(err)
			}
			domain := tc.domain
			if domain == "" {
				domain = "b.test"
			}
			got, err := r.Resolve(t.Context(), domain)
			switch {
			case tc.wantErr != nil || tc.errText != "":
				if err == nil {
					t.Fatalf("Resolve(%q) = %q, want an error", domain, show(got))
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("Resolve(%q): %v, want %v", domain, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) || !strings.HasPrefix(err.Error(), "s2s: resolve "+domain+": ") {
					t.Errorf("Resolve(%q): %q, want s2s: resolve %s: …%s…", domain, err, domain, tc.errText)
				}
			case err != nil:
				t.Fatalf("Resolve(%q): %v", domain, err)
			case !slices.Equal(show(got), tc.want):
				t.Errorf("Resolve(%q) =\n\t%q\nwant\n\t%q", domain, show(got), tc.want)
			}
			if tc.queries != nil {
				if q := dns.queries(); !slices.Equal(q, tc.queries) {
					t.Errorf("lookups %q, want %q", q, tc.queries)
				}
			}
		})
	}
}

// TestResolveServerErrorIsDNSError: the failure of a lookup keeps the
// *net.DNSError, so that the caller can tell a temporary failure
// (remote-server-timeout) from a domain with no server
// (remote-server-not-found).
func TestResolveServerErrorIsDNSError(t *testing.T) {
	dns := &fakeDNS{srv: map[string]srvReply{
		"_xmpp-server._tcp.b.test.": {err: servfail("_xmpp-server._tcp.b.test.")},
	}}
	r, err := s2s.NewResolver(s2s.ResolverOptions{DNS: dns})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Resolve(t.Context(), "b.test")
	de, ok := errors.AsType[*net.DNSError](err)
	if !ok || !de.IsTemporary || errors.Is(err, s2s.ErrNoAddress) || errors.Is(err, s2s.ErrNoService) {
		t.Fatalf("Resolve: %v (%#v), want the temporary *net.DNSError alone", err, de)
	}
}

// TestResolveLookupTimeout: each lookup gets ResolverOptions.Timeout; SRV
// lookups that run out of it count as no answer, and the A/AAAA fallback
// still runs, with its own time.
func TestResolveLookupTimeout(t *testing.T) {
	dns := &fakeDNS{
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {err: errHang},
			"_xmpps-server._tcp.b.test.": {err: errHang},
		},
		hosts: map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
	}
	r, err := s2s.NewResolver(s2s.ResolverOptions{DNS: dns, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := r.Resolve(t.Context(), "b.test")
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Resolve took %v with a 50ms lookup timeout", el)
	}
	if want := []string{"192.0.2.9:5269 b.test fallback"}; !slices.Equal(show(got), want) {
		t.Errorf("Resolve = %q, want %q", show(got), want)
	}
}

// TestResolveCanceled: when the caller's context ends during the SRV
// lookups, Resolve returns its error and does not fall back.
func TestResolveCanceled(t *testing.T) {
	dns := &fakeDNS{
		srv: map[string]srvReply{
			"_xmpp-server._tcp.b.test.":  {err: errHang},
			"_xmpps-server._tcp.b.test.": {err: errHang},
		},
		hosts: map[string]hostReply{"b.test.": {addrs: []string{"192.0.2.9"}}},
	}
	r, err := s2s.NewResolver(s2s.ResolverOptions{DNS: dns})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	got, err := r.Resolve(ctx, "b.test")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Resolve = %q, %v; want the context's error", show(got), err)
	}
	if slices.Contains(dns.queries(), "HOST b.test.") {
		t.Errorf("fell back after the caller's context ended: %q", dns.queries())
	}
}

// TestResolveBound: Resolve returns at most MaxTargets targets, however
// many records and addresses DNS gives, best first.
func TestResolveBound(t *testing.T) {
	var recs []*net.SRV
	addrs := map[string]hostReply{}
	for i := range 40 {
		name := fmt.Sprintf("h%02d.b.test.", i)
		recs = append(recs, srv(uint16(i), 0, 5269, name))
		addrs[name] = hostReply{addrs: []string{fmt.Sprintf("192.0.2.%d", i), fmt.Sprintf("2001:db8::%d", i)}}
	}
	dns := &fakeDNS{srv: map[string]srvReply{"_xmpp-server._tcp.b.test.": {recs: recs}}, hosts: addrs}
	for _, tc := range []struct {
		max, want int
	}{{0, s2s.DefaultMaxTargets}, {3, 3}, {1, 1}} {
		r, err := s2s.NewResolver(s2s.ResolverOptions{DNS: dns, MaxTargets: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Resolve(t.Context(), "b.test")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Errorf("MaxTargets %d: %d targets, want %d", tc.max, len(got), tc.want)
			continue
		}
		// Priorities 0, 1, … in order, each name's two addresses together.
		for i, tg := range got {
			if want := fmt.Sprintf("h%02d.b.test", i/2); tg.Name != want {
				t.Errorf("MaxTargets %d: target %d is %s, want one of %s", tc.max, i, tg, want)
			}
		}
	}
}

// TestResolveWeights: within one priority, the records of both services
// come first in proportion to their weights (RFC 2782, XEP-0368 §3), a
// weight-0 record rarely, and a lower priority always before.
func TestResolveWeights(t *testing.T) {
	dns := &fakeDNS{srv: map[string]srvReply{
		"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{
			srv(10, 0, 5269, "zero.b.test."),
			srv(10, 10, 5269, "ten.b.test."),
			srv(5, 7, 5269, "first.b.test."),
		}},
		"_xmpps-server._tcp.b.test.": {recs: []*net.SRV{srv(10, 30, 5223, "thirty.b.test.")}},
	}}
	rng := rand.New(rand.NewPCG(1, 2))
	r, err := s2s.NewResolver(s2s.ResolverOptions{DNS: srvOnly{dns}, IntN: rng.IntN})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	second := map[string]int{}
	for range n {
		got, err := r.Resolve(t.Context(), "b.test")
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(got))
		for i, tg := range got {
			names[i] = strings.TrimSuffix(tg.Name, ".b.test")
		}
		if len(names) != 4 || names[0] != "first" {
			t.Fatalf("Resolve = %q, want first.b.test (priority 5) before the three of priority 10", names)
		}
		second[names[1]]++
	}
	// With the weight-0 record put first, the inclusive draw from 0 to the
	// sum (40) picks it for 0 only: 1/41, 10/41 and 30/41.
	for name, w := range map[string]float64{"zero": 1, "ten": 10, "thirty": 30} {
		got, want := float64(second[name])/n, w/41
		if got < want-0.015 || got > want+0.015 {
			t.Errorf("%s.b.test came first in priority 10 %.3f of the time, want %.3f", name, got, want)
		}
	}
}

// TestResolveZeroWeightsShuffled: records of one priority that all weigh 0
// come in a pseudorandom order (RFC 2782), not always as DNS listed them.
func TestResolveZeroWeightsShuffled(t *testing.T) {
	dns := &fakeDNS{srv: map[string]srvReply{
		"_xmpp-server._tcp.b.test.": {recs: []*net.SRV{
			srv(10, 0, 5269, "a.b.test."), srv(10, 0, 5269, "b.b.test."), srv(10, 0, 5269, "c.b.test."),
		}},
	}}
	rng := rand.New(rand.NewPCG(3, 4))
	r, err := s2s.NewResolver(s2s.ResolverOptions{DNS: srvOnly{dns}, IntN: rng.IntN})
	if err != nil {
		t.Fatal(err)
	}
	const n = 6000
	first := map[string]int{}
	for range n {
		got, err := r.Resolve(t.Context(), "b.test")
		if err != nil || len(got) != 3 {
			t.Fatalf("Resolve = %q, %v", show(got), err)
		}
		first[got[0].Name]++
	}
	for _, name := range []string{"a.b.test", "b.b.test", "c.b.test"} {
		if got := float64(first[name]) / n; got < 0.3 || got > 0.37 {
			t.Errorf("%s came first %.3f of the time, want about 1/3", name, got)
		}
	}
}

// TestNewResolverRefusesBadHosts: a static host entry that cannot be used
// is refused when the Resolver is made, not when a stanza needs it.
func TestNewResolverRefusesBadHosts(t *testing.T) {
	for _, hosts := range []map[string]string{
		{"b.test": "127.0.0.1"},
		{"b.test": ":5269"},
		{"b.test": "127.0.0.1:0"},
		{"b.test": "127.0.0.1:65536"},
		{"b.test": "127.0.0.1:xmpp"},
		{"": "127.0.0.1:5269"},
		{"bücher.test": "127.0.0.1:5269"},
		{"b.test": "127.0.0.1:5269", "B.test.": "127.0.0.2:5269"},
	} {
		if _, err := s2s.NewResolver(s2s.ResolverOptions{Hosts: hosts}); err == nil || !strings.HasPrefix(err.Error(), "s2s: hosts: ") {
			t.Errorf("NewResolver(Hosts: %q): %v, want an s2s: hosts: error", hosts, err)
		}
	}
	if _, err := s2s.NewResolver(s2s.ResolverOptions{MaxTargets: -1}); err == nil {
		t.Error("NewResolver(MaxTargets: -1) succeeded")
	}
}

// TestTargetString: what a log line shows of a target.
func TestTargetString(t *testing.T) {
	for tg, want := range map[s2s.Target]string{
		{Host: "192.0.2.1", Port: 5223, DirectTLS: true, Name: "x.b.test", Source: s2s.SourceSRV}: "192.0.2.1:5223 (x.b.test, srv, direct TLS)",
		{Host: "2001:db8::1", Port: 5269, Name: "2001:db8::1", Source: s2s.SourceIP}:              "[2001:db8::1]:5269 (ip)",
		{Host: "b.test", Port: 5269, Name: "b.test", Source: s2s.SourceFallback}:                  "b.test:5269 (fallback)",
	} {
		if got := tg.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", tg, got, want)
		}
	}
}

// TestResolveNetResolver runs the default kind of DNS, a *net.Resolver
// (Go's own, pointed at a DNS responder on loopback), so that the
// classification of its real errors is what the fallback rules assume:
// NXDOMAIN and an empty answer fall back, SERVFAIL and "." do not.
func TestResolveNetResolver(t *testing.T) {
	stub := startDNS(t, map[string]dnsAnswer{
		"_xmpp-server._tcp.srv.test./SRV":    {srv: []*net.SRV{srv(10, 0, 5269, "xmpp.srv.test.")}},
		"_xmpps-server._tcp.srv.test./SRV":   {srv: []*net.SRV{srv(5, 0, 5223, "tls.srv.test.")}},
		"xmpp.srv.test./A":                   {a: []net.IP{{127, 0, 0, 2}}},
		"xmpp.srv.test./AAAA":                {},
		"tls.srv.test./A":                    {a: []net.IP{{127, 0, 0, 3}}},
		"tls.srv.test./AAAA":                 {},
		"plain.test./A":                      {a: []net.IP{{127, 0, 0, 4}}},
		"plain.test./AAAA":                   {},
		"_xmpp-server._tcp.nodata.test./A":   {a: []net.IP{{127, 0, 0, 99}}}, // the name exists, without SRV
		"nodata.test./A":                     {a: []net.IP{{127, 0, 0, 5}}},
		"nodata.test./AAAA":                  {},
		"_xmpp-server._tcp.broken.test./SRV": {rcode: 2},
		"broken.test./A":                     {a: []net.IP{{127, 0, 0, 6}}},
		"_xmpp-server._tcp.none.test./SRV":   {srv: []*net.SRV{srv(0, 0, 0, ".")}},
		"none.test./A":                       {a: []net.IP{{127, 0, 0, 7}}},
	})
	nr := &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", stub.addr)
		},
	}
	r, err := s2s.NewResolver(s2s.ResolverOptions{DNS: nr, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		domain  string
		want    []string
		wantErr error
	}{
		{domain: "srv.test", want: []string{"127.0.0.3:5223 tls.srv.test srv tls", "127.0.0.2:5269 xmpp.srv.test srv"}},
		{domain: "plain.test", want: []string{"127.0.0.4:5269 plain.test fallback"}},
		{domain: "nodata.test", want: []string{"127.0.0.5:5269 nodata.test fallback"}},
		{domain: "broken.test"},
		{domain: "none.test", wantErr: s2s.ErrNoService},
		{domain: "missing.test", wantErr: s2s.ErrNoAddress},
	} {
		got, err := r.Resolve(t.Context(), tc.domain)
		switch {
		case tc.want != nil:
			if err != nil || !slices.Equal(show(got), tc.want) {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tc.domain, show(got), err, tc.want)
			}
		case tc.wantErr != nil:
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Resolve(%q) = %q, %v; want %v", tc.domain, show(got), err, tc.wantErr)
			}
		default:
			if de, ok := errors.AsType[*net.DNSError](err); !ok || de.IsNotFound {
				t.Errorf("Resolve(%q) = %q, %v; want a DNS server error", tc.domain, show(got), err)
			}
		}
	}
	for _, q := range []string{"broken.test./A", "none.test./A"} {
		if stub.asked(q) {
			t.Errorf("fell back to %s", q)
		}
	}
	for _, q := range []string{"plain.test./A", "nodata.test./A"} {
		if !stub.asked(q) {
			t.Errorf("no fallback to %s", q)
		}
	}
}

// dnsAnswer is what the loopback DNS responder says to one question.
type dnsAnswer struct {
	rcode int // 0 NOERROR, 2 SERVFAIL; a name missing from the table is NXDOMAIN (3)
	srv   []*net.SRV
	a     []net.IP
}

type dnsStub struct {
	addr string
	mu   sync.Mutex
	log  map[string]bool
}

func (s *dnsStub) asked(q string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log[q]
}

// startDNS answers UDP queries on 127.0.0.1 from table, keyed by
// "name./TYPE", for as long as the test runs. It speaks just enough DNS
// (RFC 1035 §4) for Go's resolver: the question echoed, then SRV and A
// answers.
func startDNS(t *testing.T, table map[string]dnsAnswer) *dnsStub {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsStub{addr: pc.LocalAddr().String(), log: map[string]bool{}}
	done := make(chan struct{})
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := s.answer(buf[:n], table); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	return s
}

func (s *dnsStub) answer(q []byte, table map[string]dnsAnswer) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question's name: labels up to the zero one, then type and class.
	var labels []string
	i := 12
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if l > 63 || i+1+l > len(q) {
			return nil
		}
		labels = append(labels, strings.ToLower(string(q[i+1:i+1+l])))
		i += 1 + l
	}
	end := i + 5
	if end > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	types := map[uint16]string{1: "A", 28: "AAAA", 33: "SRV"}
	key := strings.Join(labels, ".") + "./" + types[qtype]
	s.mu.Lock()
	s.log[key] = true
	s.mu.Unlock()

	ans, ok := table[key]
	rcode := ans.rcode
	if !ok {
		rcode = 3
		// A name with other records exists: NOERROR without answers.
		for k := range table {
			if strings.HasPrefix(k, strings.Join(labels, ".")+"./") {
				rcode = 0
			}
		}
	}
	var rrs [][]byte
	if rcode == 0 {
		for _, a := range ans.a {
			if qtype == 1 {
				rrs = append(rrs, a.To4())
			}
		}
		for _, r := range ans.srv {
			if qtype != 33 {
				continue
			}
			rd := binary.BigEndian.AppendUint16(nil, r.Priority)
			rd = binary.BigEndian.AppendUint16(rd, r.Weight)
			rd = binary.BigEndian.AppendUint16(rd, r.Port)
			for _, l := range strings.Split(strings.TrimSuffix(r.Target, "."), ".") {
				if l != "" {
					rd = append(append(rd, byte(len(l))), l...)
				}
			}
			rrs = append(rrs, append(rd, 0))
		}
	}
	flags := uint16(0x8000|0x0400|0x0080) | binary.BigEndian.Uint16(q[2:])&0x0100 | uint16(rcode)
	resp := append([]byte(nil), q[:2]...)
	resp = binary.BigEndian.AppendUint16(resp, flags)
	resp = binary.BigEndian.AppendUint16(resp, 1)
	resp = binary.BigEndian.AppendUint16(resp, uint16(len(rrs)))
	resp = append(resp, 0, 0, 0, 0)
	resp = append(resp, q[12:end]...)
	for _, rd := range rrs {
		resp = append(resp, 0xC0, 12) // the question's name
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1) // IN
		resp = binary.BigEndian.AppendUint32(resp, 60)
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rd)))
		resp = append(resp, rd...)
	}
	return resp
}
