package s2stest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// SRV is one SRV record's data (RFC 2782): the host that offers the
// service, its port, and the priority and weight that order the targets.
// A Target of "." says the service is not offered at all.
type SRV struct {
	Target   string
	Port     uint16
	Priority uint16
	Weight   uint16
}

// Query is one question the DNS stub was asked.
type Query struct {
	// Name is the name asked for, in lower case and rooted
	// ("_xmpp-server._tcp.b.test.").
	Name string
	// Type is the record type asked for.
	Type dnsmessage.Type
	// Net is "udp" or "tcp".
	Net string
	// From is the address the question came from.
	From string
	// RCode is the response code the stub answered with.
	RCode dnsmessage.RCode
}

// String shows the query as "name TYPE (net, rcode)".
func (q Query) String() string {
	return fmt.Sprintf("%s %s (%s from %s, %s)", q.Name, typeName(q.Type), q.Net, q.From, rcodeName(q.RCode))
}

// DNSTTL is the TTL, in seconds, of every record the stub returns, and the
// negative TTL of its SOA (RFC 2308): short, so that a test that changes a
// record is not defeated by a peer's cache for long.
const DNSTTL = 1

// dnsIdle bounds how long a TCP connection to the stub may stay silent.
const dnsIdle = 10 * time.Second

// DNS is an authoritative-only DNS server (RFC 1035) for the names a test
// gives it, listening on UDP and TCP on the same loopback address, so that
// resolvers under test (Go's, through Resolver; Prosody's libunbound; the
// Erlang VM's inet_res) can be pointed at it and never reach the machine's
// resolver. It answers A, AAAA and SRV questions from what SetA and SetSRV
// hold; for a name that exists (it, or a name below it, has records) but
// has no record of the type asked, NOERROR with no answer (NODATA); for
// any other name NXDOMAIN; for a name given to SetRCode, that code. A
// negative answer carries an SOA of the name's top-level domain, as
// RFC 2308 wants for negative caching. A question with an EDNS0 OPT record
// (RFC 6891) gets one back; a UDP answer larger than the client can take
// is truncated (TC) so that it retries over TCP. Every question is logged
// (Queries), so a test can prove which lookups a peer made.
//
// A DNS is safe for concurrent use; its records may change while it runs.
type DNS struct {
	udp net.PacketConn
	tcp net.Listener
	wg  sync.WaitGroup

	mu      sync.Mutex
	addrs   map[string][]netip.Addr
	srv     map[string][]SRV
	rcodes  map[string]dnsmessage.RCode
	queries []Query
	conns   map[net.Conn]struct{}
	closed  bool
}

// NewDNS starts a DNS stub on addr, for both UDP and TCP; with addr empty,
// on 127.0.0.1 and a port free for both. It serves until Close.
func NewDNS(addr string) (*DNS, error) {
	udp, tcp, err := listenDNS(addr)
	if err != nil {
		return nil, err
	}
	d := &DNS{
		udp:    udp,
		tcp:    tcp,
		addrs:  map[string][]netip.Addr{},
		srv:    map[string][]SRV{},
		rcodes: map[string]dnsmessage.RCode{},
		conns:  map[net.Conn]struct{}{},
	}
	d.wg.Add(2)
	go d.serveUDP()
	go d.serveTCP()
	return d, nil
}

// listenDNS binds UDP and TCP on one address. With port 0 the UDP port is
// the kernel's choice and TCP must get the same one; another program may
// hold it for TCP, so a few ports are tried.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("s2stest: DNS address %q: %w", addr, err)
	}
	tries := 1
	if port == "0" {
		tries = 20
	}
	var lastErr error
	for range tries {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("s2stest: DNS listen udp %s: %w", addr, err)
		}
		_, p, _ := net.SplitHostPort(udp.LocalAddr().String())
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("s2stest: DNS listen tcp beside udp on %s: %w", addr, lastErr)
}

// Addr returns the address the stub listens on, "127.0.0.1:port", the same
// for UDP and TCP.
func (d *DNS) Addr() string {
	return d.udp.LocalAddr().String()
}

// AddrPort returns Addr as a netip.AddrPort.
func (d *DNS) AddrPort() netip.AddrPort {
	return d.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// canonName is the form of a name the stub keys on: lower case, rooted.
func canonName(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

// SetA sets the addresses of name: its A records (IPv4 addresses) and its
// AAAA records (IPv6 addresses). With no address, name has none.
func (d *DNS) SetA(name string, addrs ...netip.Addr) {
	name = canonName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(addrs) == 0 {
		delete(d.addrs, name)
		return
	}
	d.addrs[name] = slices.Clone(addrs)
}

// SetSRV sets the SRV records of name, the full owner name such as
// "_xmpp-server._tcp.b.test". With no record, name has none.
func (d *DNS) SetSRV(name string, records []SRV) {
	name = canonName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(records) == 0 {
		delete(d.srv, name)
		return
	}
	d.srv[name] = slices.Clone(records)
}

// SetRCode makes every question about name, whatever its type, answered
// with rcode and nothing else, such as dnsmessage.RCodeServerFailure;
// dnsmessage.RCodeSuccess undoes it.
func (d *DNS) SetRCode(name string, rcode dnsmessage.RCode) {
	name = canonName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if rcode == dnsmessage.RCodeSuccess {
		delete(d.rcodes, name)
		return
	}
	d.rcodes[name] = rcode
}

// Queries returns the questions asked so far, oldest first.
func (d *DNS) Queries() []Query {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.queries)
}

// Asked reports whether the stub was asked about name with type typ.
func (d *DNS) Asked(name string, typ dnsmessage.Type) bool {
	name = canonName(name)
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.queries, func(q Query) bool { return q.Name == name && q.Type == typ })
}

// Resolver returns Go's own resolver (PreferGo) sending every DNS query to
// the stub, over UDP or TCP as it chooses. Host lookups may still be
// answered from /etc/hosts first, as nsswitch.conf says; SRV lookups are
// always DNS.
func (d *DNS) Resolver() *net.Resolver {
	addr := d.Addr()
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			if strings.HasPrefix(network, "tcp") {
				network = "tcp"
			} else {
				network = "udp"
			}
			return dl.DialContext(ctx, network, addr)
		},
	}
}

// Close stops the stub and waits until its goroutines have ended.
func (d *DNS) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for c := range d.conns {
		c.Close()
	}
	d.mu.Unlock()
	err := errors.Join(d.udp.Close(), d.tcp.Close())
	d.wg.Wait()
	if err != nil {
		return fmt.Errorf("s2stest: close DNS: %w", err)
	}
	return nil
}

func (d *DNS) serveUDP() {
	defer d.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := d.udp.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp := d.answer(buf[:n], "udp", from); resp != nil {
			_, _ = d.udp.WriteTo(resp, from)
		}
	}
}

func (d *DNS) serveTCP() {
	defer d.wg.Done()
	for {
		c, err := d.tcp.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			c.Close()
			return
		}
		d.conns[c] = struct{}{}
		d.wg.Add(1)
		d.mu.Unlock()
		go d.serveConn(c)
	}
}

// serveConn answers the length-prefixed messages of one TCP connection
// (RFC 1035 §4.2.2; RFC 7766 allows several on one connection).
func (d *DNS) serveConn(c net.Conn) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.conns, c)
		d.mu.Unlock()
		c.Close()
	}()
	var size [2]byte
	for {
		_ = c.SetDeadline(time.Now().Add(dnsIdle))
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		resp := d.answer(msg, "tcp", c.RemoteAddr())
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(resp)), uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

// answer returns the response to the message msg, or nil when msg is not
// even a DNS header (nothing can be answered then).
func (d *DNS) answer(msg []byte, network string, from net.Addr) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	var opt *dnsmessage.ResourceHeader
	if err == nil {
		if err = p.SkipAllAnswers(); err == nil {
			err = p.SkipAllAuthorities()
		}
		for err == nil {
			var rh dnsmessage.ResourceHeader
			rh, err = p.AdditionalHeader()
			if errors.Is(err, dnsmessage.ErrSectionDone) {
				err = nil
				break
			}
			if err == nil && rh.Type == dnsmessage.TypeOPT {
				opt = &rh
			}
			if err == nil {
				err = p.SkipAdditional()
			}
		}
	}
	resp := dnsmessage.Header{
		ID:                 h.ID,
		Response:           true,
		OpCode:             h.OpCode,
		Authoritative:      true,
		RecursionDesired:   h.RecursionDesired,
		RecursionAvailable: true,
	}
	switch {
	case err != nil || len(qs) != 1:
		resp.RCode = dnsmessage.RCodeFormatError
		return d.build(resp, qs, nil, nil, opt, network)
	case h.OpCode != 0:
		resp.RCode = dnsmessage.RCodeNotImplemented
		return d.build(resp, qs, nil, nil, opt, network)
	}
	q := qs[0]
	name := strings.ToLower(q.Name.String())
	answers, rcode := d.lookup(name, q.Type)
	resp.RCode = rcode
	if q.Class != dnsmessage.ClassINET && q.Class != dnsmessage.ClassANY {
		answers, resp.RCode = nil, dnsmessage.RCodeRefused
	}

	d.mu.Lock()
	d.queries = append(d.queries, Query{Name: name, Type: q.Type, Net: network, From: from.String(), RCode: resp.RCode})
	d.mu.Unlock()

	var authority []dnsmessage.Resource
	if len(answers) == 0 && (resp.RCode == dnsmessage.RCodeSuccess || resp.RCode == dnsmessage.RCodeNameError) {
		authority = append(authority, soa(name))
	}
	for i := range answers {
		// The owner as asked, whatever case it was in (0x20 randomisation).
		answers[i].Header.Name = q.Name
	}
	return d.build(resp, qs, answers, authority, opt, network)
}

// lookup returns the records of name of type typ and the response code.
func (d *DNS) lookup(name string, typ dnsmessage.Type) ([]dnsmessage.Resource, dnsmessage.RCode) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if rc, ok := d.rcodes[name]; ok {
		return nil, rc
	}
	var out []dnsmessage.Resource
	hdr := func(t dnsmessage.Type) dnsmessage.ResourceHeader {
		return dnsmessage.ResourceHeader{Type: t, Class: dnsmessage.ClassINET, TTL: DNSTTL}
	}
	if typ == dnsmessage.TypeA || typ == dnsmessage.TypeALL {
		for _, a := range d.addrs[name] {
			if a.Unmap().Is4() {
				out = append(out, dnsmessage.Resource{Header: hdr(dnsmessage.TypeA), Body: &dnsmessage.AResource{A: a.Unmap().As4()}})
			}
		}
	}
	if typ == dnsmessage.TypeAAAA || typ == dnsmessage.TypeALL {
		for _, a := range d.addrs[name] {
			if !a.Unmap().Is4() {
				out = append(out, dnsmessage.Resource{Header: hdr(dnsmessage.TypeAAAA), Body: &dnsmessage.AAAAResource{AAAA: a.As16()}})
			}
		}
	}
	if typ == dnsmessage.TypeSRV || typ == dnsmessage.TypeALL {
		for _, s := range d.srv[name] {
			target, err := dnsmessage.NewName(canonName(s.Target))
			if err != nil {
				return nil, dnsmessage.RCodeServerFailure
			}
			out = append(out, dnsmessage.Resource{Header: hdr(dnsmessage.TypeSRV), Body: &dnsmessage.SRVResource{
				Priority: s.Priority, Weight: s.Weight, Port: s.Port, Target: target,
			}})
		}
	}
	if len(out) > 0 || d.existsLocked(name) {
		return out, dnsmessage.RCodeSuccess
	}
	return nil, dnsmessage.RCodeNameError
}

// existsLocked reports whether name has records, or a name below it has
// (an empty non-terminal such as "_tcp.b.test." exists: RFC 8020).
func (d *DNS) existsLocked(name string) bool {
	below := func(owner string) bool { return owner == name || strings.HasSuffix(owner, "."+name) || name == "." }
	for owner := range d.addrs {
		if below(owner) {
			return true
		}
	}
	for owner := range d.srv {
		if below(owner) {
			return true
		}
	}
	return false
}

// soa is the SOA record of a negative answer about name: owned by name's
// top-level domain ("test." for "x.b.test."), with DNSTTL as the negative
// TTL.
func soa(name string) dnsmessage.Resource {
	zone := "."
	if labels := strings.Split(strings.TrimSuffix(name, "."), "."); len(labels) > 0 && labels[len(labels)-1] != "" {
		zone = labels[len(labels)-1] + "."
	}
	prefix := func(p string) dnsmessage.Name {
		if zone == "." {
			return dnsmessage.MustNewName(p + ".")
		}
		return dnsmessage.MustNewName(p + "." + zone)
	}
	return dnsmessage.Resource{
		Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(zone), Type: dnsmessage.TypeSOA, Class: dnsmessage.ClassINET, TTL: DNSTTL},
		Body: &dnsmessage.SOAResource{
			NS: prefix("ns"), MBox: prefix("hostmaster"), Serial: 1,
			Refresh: 3600, Retry: 600, Expire: 86400, MinTTL: DNSTTL,
		},
	}
}

// build encodes a response. Over UDP, an answer larger than the client
// accepts (512 bytes, or its EDNS0 payload size) is sent truncated (TC,
// with the question only) so that the client asks again over TCP.
func (d *DNS) build(h dnsmessage.Header, qs []dnsmessage.Question, answers, authority []dnsmessage.Resource, opt *dnsmessage.ResourceHeader, network string) []byte {
	limit := 512
	if opt != nil && int(opt.Class) > limit {
		limit = int(opt.Class)
	}
	msg, err := encode(h, qs, answers, authority, opt)
	if err != nil {
		h.RCode = dnsmessage.RCodeServerFailure
		msg, err = encode(h, qs, nil, nil, opt)
		if err != nil {
			return nil
		}
	}
	if network == "udp" && len(msg) > limit {
		h.Truncated = true
		msg, err = encode(h, qs, nil, nil, opt)
		if err != nil {
			return nil
		}
	}
	return msg
}

func encode(h dnsmessage.Header, qs []dnsmessage.Question, answers, authority []dnsmessage.Resource, opt *dnsmessage.ResourceHeader) ([]byte, error) {
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	for _, q := range qs {
		if err := b.Question(q); err != nil {
			return nil, err
		}
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	for _, r := range answers {
		if err := addResource(&b, r); err != nil {
			return nil, err
		}
	}
	if err := b.StartAuthorities(); err != nil {
		return nil, err
	}
	for _, r := range authority {
		if err := addResource(&b, r); err != nil {
			return nil, err
		}
	}
	if opt != nil {
		if err := b.StartAdditionals(); err != nil {
			return nil, err
		}
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(1232, dnsmessage.RCodeSuccess, false); err != nil {
			return nil, err
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

func addResource(b *dnsmessage.Builder, r dnsmessage.Resource) error {
	switch body := r.Body.(type) {
	case *dnsmessage.AResource:
		return b.AResource(r.Header, *body)
	case *dnsmessage.AAAAResource:
		return b.AAAAResource(r.Header, *body)
	case *dnsmessage.SRVResource:
		return b.SRVResource(r.Header, *body)
	case *dnsmessage.SOAResource:
		return b.SOAResource(r.Header, *body)
	}
	return fmt.Errorf("s2stest: DNS: no encoder for %T", r.Body)
}

// typeName is "A", "SRV", ... for a record type, or "TYPE<n>".
func typeName(t dnsmessage.Type) string {
	if s, ok := strings.CutPrefix(t.String(), "Type"); ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// rcodeName is "NOERROR", "NXDOMAIN", ... for a response code.
func rcodeName(rc dnsmessage.RCode) string {
	switch rc {
	case dnsmessage.RCodeSuccess:
		return "NOERROR"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	}
	return "RCODE" + strconv.Itoa(int(rc))
}
