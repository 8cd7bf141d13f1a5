package s2stest_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/adhocd/adhocd/s2s/s2stest"
)

func startDNS(t *testing.T) *s2stest.DNS {
	t.Helper()
	d, err := s2stest.NewDNS("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// TestDNSResolver: Go's resolver pointed at the stub finds the SRV records
// (ordered by priority, RFC 2782) and the A and AAAA records set, and the
// stub logged each question.
func TestDNSResolver(t *testing.T) {
	d := startDNS(t)
	if !strings.HasPrefix(d.Addr(), "127.0.0.1:") || d.AddrPort().Port() == 0 {
		t.Fatalf("Addr() = %q, AddrPort() = %v", d.Addr(), d.AddrPort())
	}
	d.SetA("xmpp.B.test", netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1"))
	d.SetA("backup.b.test", netip.MustParseAddr("127.0.0.3"))
	d.SetSRV("_xmpp-server._tcp.b.test.", []s2stest.SRV{
		{Target: "backup.b.test", Port: 5270, Priority: 20, Weight: 0},
		{Target: "xmpp.b.test.", Port: 5269, Priority: 10, Weight: 5},
	})
	r := d.Resolver()
	ctx := t.Context()

	_, srvs, err := r.LookupSRV(ctx, "xmpp-server", "tcp", "b.test.")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range srvs {
		got = append(got, fmt.Sprintf("%d %d %d %s", s.Priority, s.Weight, s.Port, s.Target))
	}
	if want := []string{"10 5 5269 xmpp.b.test.", "20 0 5270 backup.b.test."}; !slices.Equal(got, want) {
		t.Errorf("LookupSRV = %q, want %q", got, want)
	}

	addrs, err := r.LookupNetIP(ctx, "ip", "xmpp.b.test.")
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	if want := []netip.Addr{netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("::1")}; !slices.Equal(addrs, want) {
		t.Errorf("LookupNetIP(xmpp.b.test) = %v, want %v", addrs, want)
	}
	if addrs, err := r.LookupNetIP(ctx, "ip6", "backup.b.test."); err == nil {
		t.Errorf("LookupNetIP(ip6, backup.b.test) = %v, want no address", addrs)
	}

	for _, q := range []struct {
		name string
		typ  dnsmessage.Type
	}{
		{"_xmpp-server._tcp.b.test", dnsmessage.TypeSRV},
		{"xmpp.b.test.", dnsmessage.TypeA},
		{"XMPP.b.test", dnsmessage.TypeAAAA},
		{"backup.b.test", dnsmessage.TypeAAAA},
	} {
		if !d.Asked(q.name, q.typ) {
			t.Errorf("Asked(%s, %v) = false; queries %v", q.name, q.typ, d.Queries())
		}
	}
	if d.Asked("missing.b.test", dnsmessage.TypeA) {
		t.Error("Asked(missing.b.test) = true, never asked")
	}
	qs := d.Queries()
	if len(qs) == 0 || qs[0].Name != "_xmpp-server._tcp.b.test." || qs[0].Type != dnsmessage.TypeSRV ||
		qs[0].Net != "udp" || qs[0].RCode != dnsmessage.RCodeSuccess || !strings.HasPrefix(qs[0].From, "127.0.0.1:") {
		t.Errorf("first query %+v, want the SRV question over UDP from loopback, answered NOERROR", qs)
	}
	if s := qs[0].String(); !strings.HasPrefix(s, "_xmpp-server._tcp.b.test. SRV (udp from 127.0.0.1:") || !strings.HasSuffix(s, ", NOERROR)") {
		t.Errorf("Query.String() = %q", s)
	}
}

// TestDNSNegative: a name nobody set is NXDOMAIN, for Go's resolver and on
// the wire; a name that exists (or has names below it) but lacks the type
// asked is NOERROR with no answer; both carry an SOA (RFC 2308). SetRCode
// answers a name with the code given, and clearing records makes a name
// disappear.
func TestDNSNegative(t *testing.T) {
	d := startDNS(t)
	d.SetSRV("_xmpp-server._tcp.b.test", []s2stest.SRV{{Target: ".", Port: 0}})
	d.SetA("broken.test", netip.MustParseAddr("127.0.0.9"))
	d.SetRCode("broken.test", dnsmessage.RCodeServerFailure)
	r := d.Resolver()

	_, err := r.LookupHost(t.Context(), "missing.test.")
	var de *net.DNSError
	if !errors.As(err, &de) || !de.IsNotFound {
		t.Errorf("LookupHost(missing.test) = %v, want not found", err)
	}
	_, err = r.LookupHost(t.Context(), "broken.test.")
	if !errors.As(err, &de) || de.IsNotFound {
		t.Errorf("LookupHost(broken.test) = %v, want a server failure, not a not found", err)
	}
	// The "." target (service not offered, RFC 2782) comes through as is.
	if _, srvs, err := r.LookupSRV(t.Context(), "xmpp-server", "tcp", "b.test."); err != nil || len(srvs) != 1 || srvs[0].Target != "." {
		t.Errorf("LookupSRV(b.test) = %v, %v; want the one '.' target", srvs, err)
	}

	for _, tc := range []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		soa   bool
	}{
		{"missing.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, true},
		{"_xmpp-server._tcp.b.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, true}, // NODATA
		{"_tcp.b.test.", dnsmessage.TypeSRV, dnsmessage.RCodeSuccess, true},            // empty non-terminal
		{"b.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, true},
		{"c.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, true},
		{"broken.test.", dnsmessage.TypeA, dnsmessage.RCodeServerFailure, false},
		{"broken.test.", dnsmessage.TypeTXT, dnsmessage.RCodeServerFailure, false},
	} {
		resp := exchange(t, "udp", d.Addr(), query(t, tc.name, tc.typ, false))
		h, answers, authority, _ := parse(t, resp)
		if h.RCode != tc.rcode || len(answers) != 0 {
			t.Errorf("%s %v: rcode %v with %d answers, want %v and none", tc.name, tc.typ, h.RCode, len(answers), tc.rcode)
		}
		if hasSOA := len(authority) == 1 && authority[0].Header.Type == dnsmessage.TypeSOA && authority[0].Header.Name.String() == "test."; hasSOA != tc.soa {
			t.Errorf("%s %v: authority %v, want an SOA of test.: %v", tc.name, tc.typ, authority, tc.soa)
		}
		if !h.Response || !h.Authoritative {
			t.Errorf("%s %v: header %+v, want an authoritative response", tc.name, tc.typ, h)
		}
	}

	d.SetRCode("broken.test", dnsmessage.RCodeSuccess)
	if addrs, err := r.LookupHost(t.Context(), "broken.test."); err != nil || !slices.Equal(addrs, []string{"127.0.0.9"}) {
		t.Errorf("LookupHost(broken.test) after SetRCode(success) = %v, %v", addrs, err)
	}
	d.SetA("broken.test")
	d.SetSRV("_xmpp-server._tcp.b.test", nil)
	for _, name := range []string{"broken.test.", "_xmpp-server._tcp.b.test."} {
		if h, _, _, _ := parse(t, exchange(t, "udp", d.Addr(), query(t, name, dnsmessage.TypeA, false))); h.RCode != dnsmessage.RCodeNameError {
			t.Errorf("%s after its records were removed: %v, want NXDOMAIN", name, h.RCode)
		}
	}

	var logged []string
	for _, q := range d.Queries() {
		if q.Name == "missing.test." {
			logged = append(logged, q.RCode.String())
		}
	}
	if len(logged) == 0 || slices.ContainsFunc(logged, func(s string) bool { return s != dnsmessage.RCodeNameError.String() }) {
		t.Errorf("the log's answers for missing.test: %q, want NXDOMAIN each time", logged)
	}
}

// TestDNSWire: what resolvers other than Go's rely on. The question's case
// is kept in the answer (0x20), while the log has it in lower case; EDNS0
// is answered with an OPT record; TCP carries several questions on one
// connection; a UDP answer too large is truncated and comes whole over TCP,
// which Go's resolver then uses by itself.
func TestDNSWire(t *testing.T) {
	d := startDNS(t)
	d.SetA("b.test", netip.MustParseAddr("127.0.0.2"))
	var many []netip.Addr
	for i := range 100 {
		many = append(many, netip.AddrFrom4([4]byte{127, 1, 0, byte(i)}))
	}
	d.SetA("many.test", many...)

	h, answers, _, opt := parse(t, exchange(t, "udp", d.Addr(), query(t, "B.TeSt.", dnsmessage.TypeA, true)))
	if h.RCode != dnsmessage.RCodeSuccess || len(answers) != 1 || answers[0].Header.Name.String() != "B.TeSt." {
		t.Errorf("0x20: rcode %v, answers %v; want one A owned by B.TeSt.", h.RCode, answers)
	} else if a, ok := answers[0].Body.(*dnsmessage.AResource); !ok || a.A != [4]byte{127, 0, 0, 2} {
		t.Errorf("0x20: answer %v, want 127.0.0.2", answers[0].Body)
	}
	if !opt {
		t.Error("EDNS0 question answered without an OPT record")
	}
	if !d.Asked("b.test", dnsmessage.TypeA) || !slices.ContainsFunc(d.Queries(), func(q s2stest.Query) bool { return q.Name == "b.test." }) {
		t.Errorf("log %v: want b.test. in lower case", d.Queries())
	}

	// Truncated over UDP (a plain 512-byte client), whole over TCP.
	h, answers, _, _ = parse(t, exchange(t, "udp", d.Addr(), query(t, "many.test.", dnsmessage.TypeA, false)))
	if !h.Truncated || len(answers) != 0 {
		t.Errorf("100 A records over UDP: truncated %v with %d answers, want TC and none", h.Truncated, len(answers))
	}
	c, err := net.Dial("tcp", d.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	for range 2 {
		h, answers, _, _ = parse(t, tcpExchange(t, c, query(t, "many.test.", dnsmessage.TypeA, false)))
		if h.Truncated || len(answers) != 100 {
			t.Errorf("100 A records over TCP: truncated %v with %d answers", h.Truncated, len(answers))
		}
	}

	addrs, err := d.Resolver().LookupHost(t.Context(), "many.test.")
	if err != nil || len(addrs) != 100 {
		t.Errorf("LookupHost(many.test) = %d addresses, %v; want 100", len(addrs), err)
	}
	var nets []string
	for _, q := range d.Queries() {
		if q.Name == "many.test." && q.Type == dnsmessage.TypeA {
			nets = append(nets, q.Net)
		}
	}
	// Ours: udp, tcp, tcp; then Go's resolver: udp (truncated), tcp.
	if want := []string{"udp", "tcp", "tcp", "udp", "tcp"}; !slices.Equal(nets, want) {
		t.Errorf("many.test A questions came over %q, want %q", nets, want)
	}
}

// TestDNSListen: NewDNS on a given address listens there for UDP and TCP,
// and Close stops both.
func TestDNSListen(t *testing.T) {
	first, err := s2stest.NewDNS("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := first.Addr()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	d, err := s2stest.NewDNS(addr)
	if err != nil {
		t.Fatalf("NewDNS(%s) again: %v", addr, err)
	}
	d.SetA("b.test", netip.MustParseAddr("127.0.0.2"))
	for _, network := range []string{"udp", "tcp"} {
		if h, answers, _, _ := parse(t, exchange(t, network, addr, query(t, "b.test.", dnsmessage.TypeA, false))); h.RCode != dnsmessage.RCodeSuccess || len(answers) != 1 {
			t.Errorf("%s to %s: %v with %d answers", network, addr, h.RCode, len(answers))
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Error("TCP still accepted after Close")
	}
	if _, err := s2stest.NewDNS("nonsense"); err == nil {
		t.Error("NewDNS(nonsense) succeeded")
	}
}

// query builds a question with a fixed ID, with an EDNS0 OPT record when
// edns is set.
func query(t *testing.T, name string, typ dnsmessage.Type, edns bool) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 0x2f1, RecursionDesired: true})
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	if edns {
		if err := b.StartAdditionals(); err != nil {
			t.Fatal(err)
		}
		var rh dnsmessage.ResourceHeader
		if err := rh.SetEDNS0(1232, dnsmessage.RCodeSuccess, true); err != nil {
			t.Fatal(err)
		}
		if err := b.OPTResource(rh, dnsmessage.OPTResource{}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// exchange sends msg to addr over network (udp or tcp) and returns the
// response.
func exchange(t *testing.T, network, addr string, msg []byte) []byte {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if network == "tcp" {
		return tcpExchange(t, c, msg)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}

// tcpExchange sends msg on a TCP connection with its length (RFC 1035
// §4.2.2) and reads one response.
func tcpExchange(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
		t.Fatal(err)
	}
	var size [2]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(size[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// parse decodes a response whose ID must be the question's: its header,
// answers, authority records and whether it has an OPT record.
func parse(t *testing.T, resp []byte) (dnsmessage.Header, []dnsmessage.Resource, []dnsmessage.Resource, bool) {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(resp); err != nil {
		t.Fatalf("unpack response: %v", err)
	}
	if m.Header.ID != 0x2f1 || !m.Header.Response || len(m.Questions) != 1 {
		t.Fatalf("response header %+v with %d questions", m.Header, len(m.Questions))
	}
	opt := slices.ContainsFunc(m.Additionals, func(r dnsmessage.Resource) bool { return r.Header.Type == dnsmessage.TypeOPT })
	return m.Header, m.Answers, m.Authorities, opt
}
