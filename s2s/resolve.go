package s2s

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultPort is the port of the xmpp-server service (RFC 6120 §3.2.2,
// §14.7): where a domain that publishes no SRV record is reached, and where
// a domain given as an IP address is.
const DefaultPort = 5269

// DefaultMaxTargets bounds the targets that Resolve returns when
// ResolverOptions.MaxTargets is zero.
const DefaultMaxTargets = 16

// DefaultLookupTimeout bounds each DNS lookup when ResolverOptions.Timeout
// is zero.
const DefaultLookupTimeout = 5 * time.Second

// The SRV services of RFC 6120 §3.2.1 (STARTTLS) and XEP-0368 §3 (direct TLS).
const (
	serviceStartTLS  = "xmpp-server"
	serviceDirectTLS = "xmpps-server"
)

// ErrNoService is wrapped by Resolve when the domain publishes a SRV target
// of "." and no other target: "the service is decidedly not available at
// this domain" (RFC 2782), and no A/AAAA fallback is tried (RFC 6120
// §3.2.1, XEP-0368 §5).
var ErrNoService = errors.New("the domain offers no XMPP server service (SRV target \".\")")

// ErrNoAddress is wrapped by Resolve when no target has an address: the
// names do not exist, or the SRV records name none that can be used.
var ErrNoAddress = errors.New("no address for the domain")

// SRVLookuper looks up SRV records as *net.Resolver does: the records of
// _service._proto.name, and a *net.DNSError whose IsNotFound is set when
// the name has none.
type SRVLookuper interface {
	LookupSRV(ctx context.Context, service, proto, name string) (cname string, addrs []*net.SRV, err error)
}

// HostLookuper looks up the addresses of a host name as *net.Resolver does.
// When the SRVLookuper of a Resolver implements it too, Resolve returns one
// target per address (RFC 6120 §3.2.1 steps 4 to 7); otherwise targets keep
// their host names and the dialer resolves them.
type HostLookuper interface {
	LookupHost(ctx context.Context, host string) (addrs []string, err error)
}

var (
	_ SRVLookuper  = (*net.Resolver)(nil)
	_ HostLookuper = (*net.Resolver)(nil)
)

// Source says where a Target came from.
type Source uint8

const (
	// SourceStatic is an entry of the static host map (s2s.hosts).
	SourceStatic Source = iota + 1
	// SourceIP is a domain that is an IP address, on DefaultPort.
	SourceIP
	// SourceSRV is a DNS SRV record, _xmpp-server or _xmpps-server.
	SourceSRV
	// SourceFallback is the domain's own A/AAAA records on DefaultPort
	// (RFC 6120 §3.2.2), used when it publishes no SRV record.
	SourceFallback
)

// String returns the source's name for logs.
func (s Source) String() string {
	switch s {
	case SourceStatic:
		return "static"
	case SourceIP:
		return "ip"
	case SourceSRV:
		return "srv"
	case SourceFallback:
		return "fallback"
	}
	return "Source(" + strconv.Itoa(int(s)) + ")"
}

// Target is one place to connect to for a remote domain, in the order
// Resolve returns them: the caller tries each until one gives an
// established stream (RFC 6120 §3.2.1).
type Target struct {
	// Host is what to dial: an IP address when it was resolved (or given
	// as one), else a host name.
	Host string
	// Port is the TCP port.
	Port uint16
	// DirectTLS says to start TLS as soon as TCP connects, with SNI set to
	// the remote domain and ALPN "xmpp-server", and never STARTTLS
	// (XEP-0368 §3); otherwise the stream starts in the clear and
	// negotiates STARTTLS.
	DirectTLS bool
	// Name is the host name that Host was resolved from: the SRV target,
	// the static host or the domain itself. It equals Host when nothing was
	// resolved.
	Name string
	// Source says where the target came from.
	Source Source
}

// Addr returns the host and port to dial, as net.JoinHostPort writes them.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port))) }

// String describes the target for logs.
func (t Target) String() string {
	var b strings.Builder
	b.WriteString(t.Addr())
	b.WriteString(" (")
	if t.Name != "" && t.Name != t.Host {
		b.WriteString(t.Name)
		b.WriteString(", ")
	}
	b.WriteString(t.Source.String())
	if t.DirectTLS {
		b.WriteString(", direct TLS")
	}
	b.WriteString(")")
	return b.String()
}

// ResolverOptions configures a Resolver. The zero value resolves through
// net.DefaultResolver with no static hosts.
type ResolverOptions struct {
	// Hosts maps a remote domain to the "host:port" to connect to instead
	// of looking it up in DNS (the s2s.hosts configuration). The host may
	// be an IP address or a name; a name is resolved like a SRV target.
	Hosts map[string]string
	// DNS answers the SRV lookups, and the address lookups too when it
	// implements HostLookuper. Nil means net.DefaultResolver.
	DNS SRVLookuper
	// Timeout bounds each DNS lookup; the two SRV lookups run at once, and
	// then the address lookups. Zero means DefaultLookupTimeout.
	Timeout time.Duration
	// MaxTargets bounds the targets Resolve returns. Zero means
	// DefaultMaxTargets.
	MaxTargets int
	// IntN returns a uniform random number in [0, n). It orders SRV records
	// of one priority (RFC 2782) and must be safe to call from every
	// goroutine that calls Resolve. Nil means math/rand/v2's IntN.
	IntN func(n int) int
}

// Resolver turns a remote domain into the ordered targets to connect to. It
// is safe for concurrent use; it caches nothing.
type Resolver struct {
	hosts   map[string]Target
	dns     SRVLookuper
	addrs   HostLookuper // nil: targets keep their names
	timeout time.Duration
	max     int
	intn    func(int) int
}

// NewResolver checks the options and returns a Resolver. It fails on a
// static host entry whose domain or "host:port" cannot be used.
func NewResolver(o ResolverOptions) (*Resolver, error) {
	r := &Resolver{
		hosts:   make(map[string]Target, len(o.Hosts)),
		dns:     o.DNS,
		timeout: cmp.Or(o.Timeout, DefaultLookupTimeout),
		max:     cmp.Or(o.MaxTargets, DefaultMaxTargets),
		intn:    o.IntN,
	}
	if r.dns == nil {
		r.dns = net.DefaultResolver
	}
	if h, ok := r.dns.(HostLookuper); ok {
		r.addrs = h
	}
	if r.intn == nil {
		r.intn = rand.IntN
	}
	if r.timeout < 0 || r.max < 0 {
		return nil, errors.New("s2s: resolver timeout and target bound must not be negative")
	}
	for domain, hostport := range o.Hosts {
		name, err := lookupName(domain)
		if err != nil {
			return nil, fmt.Errorf("s2s: hosts: %q: %w", domain, err)
		}
		t, err := parseStaticHost(hostport)
		if err != nil {
			return nil, fmt.Errorf("s2s: hosts: %s: %w", domain, err)
		}
		if _, dup := r.hosts[name]; dup {
			return nil, fmt.Errorf("s2s: hosts: %s is listed twice", name)
		}
		r.hosts[name] = t
	}
	return r, nil
}

// parseStaticHost reads a static host entry: "host:port" (STARTTLS) or
// "tls://host:port" (direct TLS, XEP-0368), as config.S2S.Hosts allows.
func parseStaticHost(s string) (Target, error) {
	addr, direct := strings.CutPrefix(s, "tls://")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Target{}, fmt.Errorf("%q is not host:port: %w", s, err)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return Target{}, fmt.Errorf("%q: the port must be a number from 1 to 65535", s)
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return Target{}, fmt.Errorf("%q has no host", s)
	}
	return Target{Host: host, Port: uint16(n), Name: host, Source: SourceStatic, DirectTLS: direct}, nil
}

// lookupName lowercases a domain and drops a trailing dot. Internationalised
// domains are refused: DNS wants their A-labels, which the caller converts.
func lookupName(domain string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(domain, "."))
	if d == "" {
		return "", errors.New("empty domain")
	}
	for i := range len(d) {
		if d[i] >= 0x80 {
			return "", errors.New("not an ASCII domain: convert it to A-labels (IDNA) first")
		}
	}
	return d, nil
}

// ipDomain returns the address that domain names if it is an IP address
// (an IPv6 address in brackets, as in a JID).
func ipDomain(domain string) (string, bool) {
	if inner, ok := strings.CutPrefix(domain, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if a, err := netip.ParseAddr(inner); ok && err == nil && a.Is6() {
			return a.String(), true
		}
		return "", false
	}
	if a, err := netip.ParseAddr(domain); err == nil {
		return a.String(), true
	}
	return "", false
}

// Resolve returns the targets for a remote domain, best first, at most
// MaxTargets of them:
//
//   - a static host entry for the domain, alone;
//   - for a domain that is an IP address, that address on DefaultPort;
//   - else the SRV records of _xmpp-server._tcp (RFC 6120 §3.2.1) and of
//     _xmpps-server._tcp (XEP-0368, direct TLS), looked up at once and
//     merged into one order as XEP-0368 §3 says: by priority, and within a
//     priority by the weighted random choice of RFC 2782 over the records
//     of both services;
//   - else, when neither name has any SRV record (or no answer came at
//     all), the domain's A/AAAA addresses on DefaultPort (RFC 6120 §3.2.2).
//
// A lone "." target is ErrNoService, without fallback, whichever service
// it is published for (though a "." for direct TLS, which says only that
// there is none, gives way to a failed _xmpp-server lookup). A lookup that fails in another way (SERVFAIL, say)
// is an error when the other service gave no usable record: the domain may
// well publish SRV records that could not be read, and falling back to its
// A/AAAA records would connect elsewhere (RFC 6120 §3.2.1 step 8). If the
// SRV records' targets exist but none of them can be reached, the caller
// must not fall back either; Resolve has no part in that.
//
// Errors are wrapped with the domain; ErrNoService, ErrNoAddress, the
// *net.DNSError of a failed lookup and the context's error can be told
// apart with errors.Is and errors.As.
func (r *Resolver) Resolve(ctx context.Context, domain string) ([]Target, error) {
	targets, err := r.resolve(ctx, domain)
	if err != nil {
		return nil, fmt.Errorf("s2s: resolve %s: %w", domain, err)
	}
	return targets, nil
}

func (r *Resolver) resolve(ctx context.Context, domain string) ([]Target, error) {
	name, err := lookupName(domain)
	if err != nil {
		return nil, err
	}
	if t, ok := r.hosts[name]; ok {
		return r.expand(ctx, []Target{t})
	}
	if ip, ok := ipDomain(name); ok {
		return []Target{{Host: ip, Port: DefaultPort, Name: ip, Source: SourceIP}}, nil
	}

	var plain, direct srvAnswer
	var wg sync.WaitGroup
	wg.Go(func() { plain = r.lookupSRV(ctx, serviceStartTLS, name, false) })
	wg.Go(func() { direct = r.lookupSRV(ctx, serviceDirectTLS, name, true) })
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	records := append(plain.records, direct.records...)
	switch {
	case len(records) > 0:
		return r.expand(ctx, r.order(records))
	// A "." for direct TLS says only that there is none: a failed
	// _xmpp-server lookup may still hide records, and wins over it.
	case plain.dot:
		return nil, ErrNoService
	case plain.err != nil:
		return nil, plain.err
	case direct.dot:
		return nil, ErrNoService
	case direct.err != nil:
		return nil, direct.err
	case plain.answered || direct.answered:
		return nil, fmt.Errorf("%w: no SRV record names a usable port", ErrNoAddress)
	}
	return r.expand(ctx, []Target{{Host: name, Port: DefaultPort, Name: name, Source: SourceFallback}})
}

// srvAnswer is what one SRV lookup said.
type srvAnswer struct {
	records  []srvRecord // usable records, in the order received
	answered bool        // the name has SRV records, usable or not
	dot      bool        // a "." target and no usable record
	err      error       // a failure other than "no such name" or no answer at all
}

// srvRecord is a usable SRV record: the target it becomes and the fields
// that order it.
type srvRecord struct {
	target           Target
	priority, weight uint16
}

// lookupSRV runs one SRV lookup and classifies its outcome.
func (r *Resolver) lookupSRV(ctx context.Context, service, name string, direct bool) srvAnswer {
	lctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	// The name is rooted so that no search domain of resolv.conf is ever
	// tried: a remote domain is a whole name, and *net.Resolver reports
	// the last search name's error, which would turn a SERVFAIL into a
	// "no such name" and so into a fallback.
	_, recs, err := r.dns.LookupSRV(lctx, service, "tcp", name+".")
	var a srvAnswer
	for _, s := range recs {
		if s == nil {
			continue
		}
		a.answered = true
		host := strings.ToLower(strings.TrimSuffix(s.Target, "."))
		switch {
		case host == "":
			a.dot = true
		case s.Port != 0:
			a.records = append(a.records, srvRecord{
				target:   Target{Host: host, Port: s.Port, DirectTLS: direct, Name: host, Source: SourceSRV},
				priority: s.Priority,
				weight:   s.Weight,
			})
		}
	}
	if len(a.records) > 0 {
		// "." means no service only when it is the one record (RFC 2782).
		a.dot = false
	}
	// Records that arrive with an error (*net.Resolver drops malformed
	// names and says so) are still an answer.
	if !a.answered && err != nil && !dnsNotFound(err) && !dnsNoResponse(err) {
		a.err = fmt.Errorf("lookup _%s._tcp.%s: %w", service, name, err)
	}
	return a
}

// dnsNotFound reports whether err says the name has no records of the type
// asked (NXDOMAIN, or an answer without any).
func dnsNotFound(err error) bool {
	de, ok := errors.AsType[*net.DNSError](err)
	return ok && de.IsNotFound
}

// dnsNoResponse reports whether err says that no answer came in time: RFC 6120
// §3.2.1 step 9 falls back when "the initiating entity does not receive a
// response to its SRV query".
func dnsNoResponse(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	de, ok := errors.AsType[*net.DNSError](err)
	return ok && de.IsTimeout
}

// order sorts SRV records of both services as one set (XEP-0368 §3):
// ascending priority, and within a priority the weighted random order of
// RFC 2782. It stops at the target bound. A record repeated (same host,
// port and TLS mode) counts once, at its best priority.
func (r *Resolver) order(recs []srvRecord) []Target {
	slices.SortStableFunc(recs, func(a, b srvRecord) int { return cmp.Compare(a.priority, b.priority) })
	seen := make(map[Target]bool, len(recs))
	recs = slices.DeleteFunc(recs, func(s srvRecord) bool {
		if seen[s.target] {
			return true
		}
		seen[s.target] = true
		return false
	})
	out := make([]Target, 0, min(len(recs), r.max))
	for len(recs) > 0 && len(out) < r.max {
		n := 1
		for n < len(recs) && recs[n].priority == recs[0].priority {
			n++
		}
		out = r.weighted(out, recs[:n])
		recs = recs[n:]
	}
	return out
}

// weighted appends the records of one priority to out in the order of
// RFC 2782's "Weight" rule: with the records in any order but those of
// weight 0 first, pick a uniform random number from 0 to the sum of the
// weights (inclusive) and take the first record whose running sum reaches
// it; repeat with the rest. The records start in a random order, because
// records of one priority "SHOULD be tried in pseudorandom order" and the
// rule alone would always put the first weight-0 record first.
func (r *Resolver) weighted(out []Target, group []srvRecord) []Target {
	for i := len(group) - 1; i > 0; i-- {
		j := r.intn(i + 1)
		group[i], group[j] = group[j], group[i]
	}
	slices.SortStableFunc(group, func(a, b srvRecord) int {
		return cmp.Compare(min(a.weight, 1), min(b.weight, 1))
	})
	for len(group) > 0 && len(out) < r.max {
		sum := 0
		for _, s := range group {
			sum += int(s.weight)
		}
		pick, run, k := r.intn(sum+1), 0, 0
		for k = range group {
			run += int(group[k].weight)
			if run >= pick {
				break
			}
		}
		out = append(out, group[k].target)
		group = slices.Delete(group, k, k+1)
	}
	return out
}

// expand replaces each target's host name by its addresses, in order, when
// the Resolver can look addresses up; targets that are IP addresses stay.
// The lookups run at once. Targets whose name has no address are left out;
// it fails only when no target is left.
func (r *Resolver) expand(ctx context.Context, targets []Target) ([]Target, error) {
	if r.addrs == nil {
		return dedupeTargets(targets, r.max), nil
	}
	addrs := make([][]string, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		if a, err := netip.ParseAddr(t.Host); err == nil {
			addrs[i] = []string{a.String()}
			continue
		}
		host := t.Host
		if t.Source != SourceStatic {
			// Rooted, as in lookupSRV. A static host is the operator's
			// name, resolved as the system resolves it.
			host += "."
		}
		wg.Go(func() {
			lctx, cancel := context.WithTimeout(ctx, r.timeout)
			defer cancel()
			addrs[i], errs[i] = r.addrs.LookupHost(lctx, host)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Target
	for i, t := range targets {
		for _, a := range addrs[i] {
			x := t
			x.Host = a
			out = append(out, x)
		}
	}
	if out = dedupeTargets(out, r.max); len(out) > 0 {
		return out, nil
	}
	var names []string
	for i, t := range targets {
		if err := errs[i]; err != nil && !dnsNotFound(err) {
			return nil, fmt.Errorf("lookup %s: %w", t.Host, err)
		}
		names = append(names, t.Host)
	}
	return nil, fmt.Errorf("%w: %s has no A or AAAA record", ErrNoAddress, strings.Join(names, ", "))
}

// dedupeTargets drops targets that repeat an earlier one's address and TLS mode,
// and keeps at most limit.
func dedupeTargets(targets []Target, limit int) []Target {
	type key struct {
		host   string
		port   uint16
		direct bool
	}
	seen := make(map[key]bool, len(targets))
	out := targets[:0:0]
	for _, t := range targets {
		k := key{t.Host, t.Port, t.DirectTLS}
		if seen[k] {
			continue
		}
		seen[k] = true
		if out = append(out, t); len(out) == limit {
			break
		}
	}
	return out
}
