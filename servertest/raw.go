package servertest

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/wire/wiretest"
)

// Raw is a client that writes bytes as they are and reads what the server
// answers, for the input no client library would produce.
type Raw struct {
	net.Conn
	r   *bufio.Reader
	buf strings.Builder
	t   testing.TB
}

// RawDial opens a TCP connection to the server.
func (s *Server) RawDial() *Raw { s.t.Helper(); return DialRaw(s.t, s.Addr) }

// DialRaw opens a TCP connection to any XMPP server at addr (host:port); it
// is closed when the test ends.
func DialRaw(t testing.TB, addr string) *Raw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("servertest: raw dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return NewRaw(t, c)
}

// NewRaw reads and writes raw XML over a connection already open (one
// that began with TLS, say).
func NewRaw(t testing.TB, c net.Conn) *Raw { return &Raw{Conn: c, r: bufio.NewReader(c), t: t} }

// Header is the stream header a client sends to this server.
const Header = wiretest.Header

// Write sends s; a write error is ignored because the server may already
// have closed the stream, which the test then reads.
func (r *Raw) Write(s string) {
	_ = r.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(r.Conn, s)
}

// Expect reads until the received text matches pattern and returns all that
// was received since the last Expect; it fails the test on timeout or close.
func (r *Raw) Expect(pattern string) string {
	r.t.Helper()
	got, ok := r.ReadUntil(pattern, 5*time.Second)
	if !ok {
		r.t.Fatalf("servertest: never received %q; got %q", pattern, got)
	}
	return got
}

// ReadUntil reads until pattern matches, the connection closes or timeout.
func (r *Raw) ReadUntil(pattern string, timeout time.Duration) (string, bool) {
	re := regexp.MustCompile(pattern)
	_ = r.SetReadDeadline(time.Now().Add(timeout))
	b := make([]byte, 4096)
	for {
		if re.MatchString(r.buf.String()) {
			out := r.buf.String()
			r.buf.Reset()
			return out, true
		}
		n, err := r.r.Read(b)
		r.buf.Write(b[:n])
		if err != nil {
			out := r.buf.String()
			return out, re.MatchString(out)
		}
	}
}

// ClosedByServer reads until the server closes the connection and returns
// everything it sent.
func (r *Raw) ClosedByServer(timeout time.Duration) (string, bool) {
	_ = r.SetReadDeadline(time.Now().Add(timeout))
	all, err := io.ReadAll(r.r)
	out := r.buf.String() + string(all)
	r.buf.Reset()
	return out, err == nil
}

// StartTLS negotiates STARTTLS on a fresh stream and restarts it.
func (r *Raw) StartTLS(cfg *tls.Config) {
	r.t.Helper()
	r.Write(Header)
	r.Expect(`</stream:features>`)
	r.Write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`)
	r.Expect(`<proceed`)
	tc := tls.Client(r.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		r.t.Fatalf("servertest: TLS handshake: %v", err)
	}
	r.Conn, r.r = tc, bufio.NewReader(tc)
	r.Write(Header)
	r.Expect(`</stream:features>`)
}

// RawLogin runs STARTTLS, SASL PLAIN and binds resource, leaving the raw
// stream ready for stanzas.
func (s *Server) RawLogin(user, password, resource string) *Raw {
	s.t.Helper()
	r := s.RawDial()
	r.Login(s.ClientTLS, user, password, resource)
	return r
}

// Login runs STARTTLS, SASL PLAIN and binds resource on a fresh connection.
func (r *Raw) Login(cfg *tls.Config, user, password, resource string) {
	r.t.Helper()
	r.Authenticate(cfg, user, password)
	r.Write(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`)
	r.Expect(`</iq>`)
}

// Authenticate runs STARTTLS and SASL PLAIN on a fresh connection and
// restarts the stream, which is left before resource binding (where a
// XEP-0198 resumption goes); it returns the stream features.
func (r *Raw) Authenticate(cfg *tls.Config, user, password string) string {
	r.t.Helper()
	r.StartTLS(cfg)
	r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + `</auth>`)
	r.Expect(`<success`)
	r.Write(Header)
	return r.Expect(`</stream:features>`)
}

// RawDialer opens a TCP connection to the server with d (to set socket
// options such as a small receive buffer); it is closed when the test ends.
func (s *Server) RawDialer(d *net.Dialer) *Raw {
	s.t.Helper()
	c, err := d.Dial("tcp", s.Addr)
	if err != nil {
		s.t.Fatalf("servertest: raw dial: %v", err)
	}
	s.t.Cleanup(func() { c.Close() })
	return &Raw{Conn: c, r: bufio.NewReader(c), t: s.t}
}
