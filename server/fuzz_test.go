package server

// Fuzz targets for everything a client can send on its stream.
//
//   - FuzzStream writes the input as it is on a fresh TCP connection to one
//     server started for the whole run (no TLS required, PLAIN allowed in
//     the clear, small limits), closes the write side and checks what comes
//     back: a well-formed stream (or streams, around a SASL restart) that the
//     server closes, stream errors and SASL and stanza errors with exactly one
//     defined condition, no stanza before authentication, nothing after a
//     stream error; then that the connection and its session are gone and
//     that nothing was logged at ERROR (an internal failure). Every 64 inputs
//     a well-behaved client logs in and is answered.
//   - FuzzBoundStream does the same with the input written after a PLAIN
//     login and resource binding, and also checks that the account is bound
//     and that no roster grew beyond max_roster_items.
//
// Run one for a bounded time with, for example,
//
//	go test -run '^$' -fuzz '^FuzzStream$' -fuzztime 30s ./server
//
// A failing input is written to testdata/fuzz/<Target>/ and then runs in
// every plain go test.
//
// This file is in package server for the server's unexported API, so it
// cannot import servertest (which imports server): the test server is started
// with New and Start as servertest does. FuzzDecoder, for the stream decoder
// alone, is in package wire.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/c2s"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/defaults"
	"github.com/adhocd/adhocd/wire"
	"github.com/adhocd/adhocd/wire/wiretest"
)

const (
	fuzzNSStreamErr = "urn:ietf:params:xml:ns:xmpp-streams"
	fuzzNSStanzaErr = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// The defined conditions: stream errors (RFC 6120 §4.9.3), stanza errors
// (§8.3.3) with their types (§8.3.2), and SASL failures (§6.5).
var (
	fuzzStanzaConditions = wiretest.NameSet("bad-request", "conflict", "feature-not-implemented", "forbidden", "gone",
		"internal-server-error", "item-not-found", "jid-malformed", "not-acceptable", "not-allowed",
		"not-authorized", "policy-violation", "recipient-unavailable", "redirect", "registration-required",
		"remote-server-not-found", "remote-server-timeout", "resource-constraint", "service-unavailable",
		"subscription-required", "undefined-condition", "unexpected-request")
	fuzzStanzaErrorTypes = wiretest.NameSet("auth", "cancel", "continue", "modify", "wait")
	fuzzSASLConditions   = wiretest.NameSet("aborted", "account-disabled", "credentials-expired", "encryption-required",
		"incorrect-encoding", "invalid-authzid", "invalid-mechanism", "malformed-request",
		"mechanism-too-weak", "not-authorized", "temporary-auth-failure")
)

// ---------------------------------------------------------------------------
// The server the stream targets talk to.

const (
	fuzzDomain    = "localhost"
	fuzzMaxStanza = 2048
	fuzzMaxDepth  = 8
	fuzzMaxAttrs  = 8
	fuzzMaxRoster = 16
	// fuzzAnswerTimeout bounds the wait for the server to answer and close.
	fuzzAnswerTimeout = 5 * time.Second
	// fuzzMaxInput keeps an exchange short.
	fuzzMaxInput = 8 << 10
)

type fuzzServer struct {
	s    *Server
	addr string
	logs *fuzzErrorLog
	n    atomic.Int64 // inputs run
}

// fuzzErrorLog counts records at ERROR level: the server logs those for its own
// failures (a handler that failed, a command that failed), never for what a
// client sent.
type fuzzErrorLog struct {
	mu   sync.Mutex
	n    int
	last string
}

func (l *fuzzErrorLog) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelError }
func (l *fuzzErrorLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	l.n++
	l.last = b.String()
	l.mu.Unlock()
	return nil
}
func (l *fuzzErrorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *fuzzErrorLog) WithGroup(string) slog.Handler      { return l }

func (l *fuzzErrorLog) count() (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, l.last
}

// startFuzzServer starts one server for a whole fuzz run: no TLS required,
// PLAIN in the clear, small limits, the per-address login back-off out of
// the way, the test wizard registered, and accounts alice and bob.
func startFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	cfg := config.Default()
	cfg.Domain = fuzzDomain
	cfg.C2S.Listen = "127.0.0.1:0"
	cfg.S2S.Listen = "" // no federation listener
	cfg.C2S.RequireTLS = false
	cfg.C2S.AllowPlainWithoutTLS = true
	cfg.Storage.Path = fuzzStorageDir(f)
	cfg.Limits.MaxStanzaBytes = fuzzMaxStanza
	cfg.Limits.MaxDepth = fuzzMaxDepth
	cfg.Limits.MaxAttributes = fuzzMaxAttrs
	cfg.Limits.MaxRosterItems = fuzzMaxRoster
	// A session the input left hibernating (XEP-0198) ends soon after.
	cfg.Limits.SM.ResumeTimeout = config.Duration(100 * time.Millisecond)
	cfg.Limits.PreAuthTimeout = config.Duration(10 * time.Second)
	cfg.Limits.StanzaTimeout = config.Duration(10 * time.Second)
	cfg.Limits.WriteTimeout = config.Duration(5 * time.Second)
	cfg.Limits.MaxAuthFailuresPerAddress = 1 << 30
	cfg.Limits.MaxAuthFailuresPerAccountAddress = 1 << 30
	cfg.Limits.Rate = config.Rate{}
	logs := &fuzzErrorLog{}
	s, err := New(cfg, WithLogger(slog.New(logs)), WithModules(defaults.Modules()...), WithCommands(adhoctest.Wizard(), adhoctest.Greeting()))
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Shutdown(ctx)
	})
	for _, u := range []string{"alice", "bob"} {
		if err := s.AddUser(ctx, u, "wonderland"); err != nil {
			f.Fatal(err)
		}
	}
	return &fuzzServer{s: s, addr: s.Addr().String(), logs: logs}
}

// fuzzStorageDir is a temporary folder for the server's store, in memory
// (/dev/shm) where there is one: every login writes to the store, and a disk's
// fsync would bound the rate of inputs.
func fuzzStorageDir(f *testing.F) string {
	if dir, err := os.MkdirTemp("/dev/shm", "adhocd-fuzz-"); err == nil {
		f.Cleanup(func() { _ = os.RemoveAll(dir) })
		return dir
	}
	return f.TempDir()
}

// exchange writes input on a new connection, closes the write side and
// returns what the server sent up to its </stream:stream> or the end of the
// connection. It is an error if the server has not finished within
// fuzzAnswerTimeout.
func (fs *fuzzServer) exchange(input []byte) ([]byte, error) {
	c, err := net.DialTimeout("tcp", fs.addr, fuzzAnswerTimeout)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	tc := c.(*net.TCPConn)
	// Reset rather than linger in TIME_WAIT: a fuzz run opens many
	// connections.
	_ = tc.SetLinger(0)
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(fuzzAnswerTimeout))
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var out []byte
		buf := make([]byte, 16<<10)
		for {
			n, err := tc.Read(buf)
			out = append(out, buf[:n]...)
			if bytes.HasSuffix(out, []byte("</stream:stream>")) {
				done <- result{out, nil}
				return
			}
			if err != nil {
				done <- result{out, err}
				return
			}
		}
	}()
	_, _ = tc.Write(input) // the server may have ended the stream already
	_ = tc.CloseWrite()
	r := <-done
	var ne net.Error
	switch {
	case r.err == nil, errors.Is(r.err, io.EOF), errors.Is(r.err, syscall.ECONNRESET):
		return r.out, nil
	case errors.As(r.err, &ne) && ne.Timeout():
		return r.out, fmt.Errorf("the server neither closed the stream nor the connection within %s after the client's input ended; received %q", fuzzAnswerTimeout, r.out)
	}
	return r.out, fmt.Errorf("read: %w (received %q)", r.err, r.out)
}

// settle waits for the server to forget the connection and its session,
// and checks that it logged no internal error meanwhile.
func (fs *fuzzServer) settle(errsBefore int) error {
	deadline := time.Now().Add(fuzzAnswerTimeout)
	for {
		fs.s.mu.Lock()
		conns := len(fs.s.conns)
		fs.s.mu.Unlock()
		sessions, _, _, _ := fs.s.router.Count()
		if conns == 0 && sessions == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d connections and %d sessions still open %s after the client left", conns, sessions, fuzzAnswerTimeout)
		}
		time.Sleep(50 * time.Microsecond)
	}
	if n, last := fs.logs.count(); n != errsBefore {
		return fmt.Errorf("the server logged %d internal errors, the last: %s", n-errsBefore, last)
	}
	return nil
}

func fuzzPlainAuth(user, password string) string {
	return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
		base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password)) + `</auth>`
}

// fuzzLoginPrefix authenticates alice with PLAIN and binds resource, pipelined.
func fuzzLoginPrefix(resource string) string {
	return wiretest.Header + fuzzPlainAuth("alice", "wonderland") + wiretest.Header +
		`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>` + resource + `</resource></bind></iq>`
}

// healthy checks that a well-behaved client still logs in and is answered.
func (fs *fuzzServer) healthy() error {
	errs, _ := fs.logs.count()
	out, err := fs.exchange([]byte(fuzzLoginPrefix("health") + `<iq type='get' id='hc' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>`))
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	st, err := fuzzCheckServerStream(out)
	if err != nil {
		return fmt.Errorf("health check: %w\nreceived: %q", err, out)
	}
	if !st.bound || !st.results["hc"] || len(st.streamErrors) > 0 {
		return fmt.Errorf("health check: a well-behaved client is not served any more: %q", out)
	}
	return fs.settle(errs)
}

// run is one input: exchange, check, settle; and every 64 inputs a health
// check.
func (fs *fuzzServer) run(t *testing.T, input []byte) fuzzStreamState {
	t.Helper()
	errs, _ := fs.logs.count()
	out, err := fs.exchange(input)
	if err != nil {
		t.Fatalf("%v\nsent: %q", err, input)
	}
	st, err := fuzzCheckServerStream(out)
	if err != nil {
		t.Fatalf("%v\nsent:     %q\nreceived: %q", err, input, out)
	}
	// The server answers in proportion to what it is sent.
	if limit := 64<<10 + 16*len(input); len(out) > limit {
		t.Fatalf("%d bytes sent back for %d received", len(out), len(input))
	}
	if err := fs.settle(errs); err != nil {
		t.Fatalf("%v\nsent:     %q\nreceived: %q", err, input, out)
	}
	if fs.n.Add(1)%64 == 0 {
		if err := fs.healthy(); err != nil {
			t.Fatalf("after %q: %v", input, err)
		}
	}
	return st
}

// ---------------------------------------------------------------------------
// What the server sends, checked.

// fuzzStreamState is what a client learnt from the server's output.
type fuzzStreamState struct {
	authed, bound bool
	full          string          // the bound JID
	results       map[string]bool // ids of IQ results
	streamErrors  []string
	closed        bool // the server closed its stream
	proceed       bool // the server said <proceed/> (the stream ends there)
	resumable     bool // the server enabled XEP-0198 resumption: a lost connection hibernates
}

var fuzzXMLDecl = []byte("<?xml version='1.0'?>")

// fuzzCheckServerStream parses the server's output: one stream per (re)start,
// each opened with an XML declaration and a header, and checks every
// top-level element in order.
func fuzzCheckServerStream(out []byte) (fuzzStreamState, error) {
	st := fuzzStreamState{results: map[string]bool{}}
	if len(out) == 0 {
		return st, errors.New("the server sent nothing")
	}
	segs := bytes.Split(out, fuzzXMLDecl)
	if len(segs[0]) != 0 {
		return st, fmt.Errorf("the output does not begin with an XML declaration and a stream header")
	}
	segs = segs[1:]
	for i, seg := range segs {
		last := i == len(segs)-1
		els, closed, err := fuzzParseStream(seg)
		if err != nil {
			return st, fmt.Errorf("stream %d: %w", i+1, err)
		}
		if i > 0 && !st.authed {
			return st, fmt.Errorf("stream %d: the server restarted the stream without SASL success", i+1)
		}
		for j, el := range els {
			if err := st.check(el); err != nil {
				return st, fmt.Errorf("stream %d, element %d <%s xmlns='%s'>: %w", i+1, j+1, el.Start.Name.Local, el.Start.Name.Space, err)
			}
			if len(st.streamErrors) > 0 && (j != len(els)-1 || !last || !closed) {
				return st, fmt.Errorf("stream %d: the stream error is not the last thing before </stream:stream>", i+1)
			}
			if st.proceed && (j != len(els)-1 || !last || closed) {
				return st, fmt.Errorf("stream %d: the stream goes on after <proceed/>", i+1)
			}
		}
		lastName := xml.Name{}
		if len(els) > 0 {
			lastName = els[len(els)-1].Start.Name
		}
		switch {
		case !last && closed:
			return st, fmt.Errorf("stream %d: a stream after the closed one", i+1)
		case !last && lastName != xml.Name{Space: c2s.NSSASL, Local: "success"}:
			return st, fmt.Errorf("stream %d: a new stream header not after <success/>", i+1)
		case last && !closed && !st.proceed && !st.resumable:
			// A resumable session (XEP-0198) whose client went without
			// closing its stream hibernates: the server closes no stream.
			return st, fmt.Errorf("stream %d: the server did not close its stream (last element %v)", i+1, lastName)
		}
		st.closed = closed
	}
	return st, nil
}

// fuzzParseStream reads one stream (after its XML declaration): the header, the
// top-level elements, and the end tag if any. An input that stops with the
// stream open and no element open is the end of an unclosed stream.
func fuzzParseStream(seg []byte) (els []*wire.Element, closed bool, err error) {
	d := xml.NewDecoder(bytes.NewReader(seg))
	d.Strict = true
	declared := map[string]bool{wire.NSXML: true}
	checkNames := func(st xml.StartElement) error {
		for _, a := range st.Attr {
			if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
				declared[a.Value] = true
			}
		}
		if st.Name.Space != "" && !declared[st.Name.Space] {
			return fmt.Errorf("<%s> uses the undeclared namespace prefix %q", st.Name.Local, st.Name.Space)
		}
		for _, a := range st.Attr {
			if a.Name.Space != "" && a.Name.Space != "xmlns" && !declared[a.Name.Space] {
				return fmt.Errorf("attribute %s uses the undeclared namespace prefix %q", a.Name.Local, a.Name.Space)
			}
		}
		return nil
	}
	tok, err := d.Token()
	if err != nil {
		return nil, false, fmt.Errorf("no stream header: %v", err)
	}
	hdr, ok := tok.(xml.StartElement)
	if !ok || hdr.Name != (xml.Name{Space: c2s.NSStream, Local: "stream"}) {
		return nil, false, fmt.Errorf("the stream opens with %#v, not <stream:stream>", tok)
	}
	if err := checkNames(hdr); err != nil {
		return nil, false, err
	}
	var ns, from, id, version string
	for _, a := range hdr.Attr {
		switch a.Name {
		case xml.Name{Local: "xmlns"}:
			ns = a.Value
		case xml.Name{Local: "from"}:
			from = a.Value
		case xml.Name{Local: "id"}:
			id = a.Value
		case xml.Name{Local: "version"}:
			version = a.Value
		}
	}
	if ns != stanza.NSClient || from != fuzzDomain || id == "" || version != "1.0" {
		return nil, false, fmt.Errorf("stream header %v: want xmlns jabber:client, from %s, an id and version 1.0", hdr.Attr, fuzzDomain)
	}
	var cur *wire.Element
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) && se.Msg == "unexpected EOF" && cur == nil && !closed {
				return els, false, nil
			}
			if err == io.EOF && closed {
				return els, true, nil
			}
			return nil, false, fmt.Errorf("not well-formed: %v", err)
		}
		if closed {
			return nil, false, fmt.Errorf("%#v after </stream:stream>", tok)
		}
		tok = xml.CopyToken(tok)
		switch tk := tok.(type) {
		case xml.StartElement:
			if err := checkNames(tk); err != nil {
				return nil, false, err
			}
			depth++
			if depth == 1 {
				cur = &wire.Element{Start: wire.StripNSDecl(tk)}
				continue
			}
			tok = wire.StripNSDecl(tk)
		case xml.EndElement:
			depth--
			if depth < 0 {
				closed = true
				continue
			}
			if depth == 0 {
				els = append(els, cur)
				cur = nil
				continue
			}
		case xml.CharData:
			if !utf8.Valid(tk) {
				return nil, false, fmt.Errorf("character data is not UTF-8")
			}
			if depth == 0 {
				return nil, false, fmt.Errorf("text %q between top-level elements", tk)
			}
		default:
			return nil, false, fmt.Errorf("%T in the stream (RFC 6120 §11.1)", tk)
		}
		cur.Inner = append(cur.Inner, tok)
	}
}

// fuzzChildren returns the direct children of an element.
func fuzzChildren(el *wire.Element) []*wire.Element {
	return (&wire.TokenBuffer{Toks: el.Inner}).Elements()
}

// check checks one top-level element given what came before it.
func (st *fuzzStreamState) check(el *wire.Element) error {
	if len(st.streamErrors) > 0 {
		return errors.New("sent after a stream error")
	}
	name := el.Start.Name
	switch {
	case name == xml.Name{Space: c2s.NSStream, Local: "features"}:
		var mechs, bind bool
		for _, c := range fuzzChildren(el) {
			switch c.Start.Name {
			case xml.Name{Space: c2s.NSSASL, Local: "mechanisms"}:
				for _, m := range fuzzChildren(c) {
					mechs = mechs || wire.TextOf(append([]xml.Token{m.Start}, m.Inner...)) == "PLAIN"
				}
			case xml.Name{Space: c2s.NSBind, Local: "bind"}:
				bind = true
			}
		}
		if !st.authed && !mechs {
			return errors.New("the features before authentication do not offer PLAIN")
		}
		if st.authed && !bind {
			return errors.New("the features after authentication do not offer resource binding")
		}
	case name == xml.Name{Space: c2s.NSStream, Local: "error"}:
		cond, err := fuzzCheckErrorChildren(el, fuzzNSStreamErr, wiretest.StreamConditions)
		if err != nil {
			return fmt.Errorf("stream error: %w", err)
		}
		st.streamErrors = append(st.streamErrors, cond)
	case name == xml.Name{Space: c2s.NSTLS, Local: "proceed"}:
		if st.authed {
			return errors.New("<proceed/> after authentication")
		}
		st.proceed = true
	case name == xml.Name{Space: c2s.NSTLS, Local: "failure"}:
	case name == xml.Name{Space: c2s.NSSASL, Local: "challenge"}, name == xml.Name{Space: c2s.NSSASL, Local: "success"}:
		if st.authed {
			return errors.New("SASL after authentication")
		}
		if s := strings.TrimSpace(wire.TextOf(append([]xml.Token{el.Start}, el.Inner...))); s != "" && s != "=" {
			if _, err := base64.StdEncoding.DecodeString(s); err != nil {
				return fmt.Errorf("SASL data %q is not base64", s)
			}
		}
		if name.Local == "success" {
			st.authed = true
		}
	case name == xml.Name{Space: c2s.NSSASL, Local: "failure"}:
		if _, err := fuzzCheckErrorChildren(el, c2s.NSSASL, fuzzSASLConditions); err != nil {
			return fmt.Errorf("SASL failure: %w", err)
		}
	case wire.IsStanza(name):
		return st.checkStanza(el)
	case name.Space == c2s.NSSM && (name.Local == "enabled" || name.Local == "a" || name.Local == "r" || name.Local == "resumed"):
		if !st.authed {
			return errors.New("stream management before authentication")
		}
		st.resumable = st.resumable || name.Local == "enabled" && el.Attr("resume") == "true"
	case name.Space == c2s.NSSM && name.Local == "failed":
		if _, err := fuzzCheckErrorChildren(el, fuzzNSStanzaErr, fuzzStanzaConditions); err != nil {
			return fmt.Errorf("stream management failure: %w", err)
		}
	default:
		return errors.New("not an element a server sends on a client stream")
	}
	return nil
}

// checkStanza checks a stanza the server sent.
func (st *fuzzStreamState) checkStanza(el *wire.Element) error {
	if !st.authed {
		return errors.New("a stanza before authentication")
	}
	typ := el.Attr("type")
	if !st.bound {
		// Before binding only the answer to the bind request.
		if el.Start.Name.Local != "iq" {
			return errors.New("a stanza before resource binding")
		}
		switch typ {
		case "result":
			bind := el.Sub(xml.Name{Space: c2s.NSBind, Local: "bind"})
			if bind == nil {
				return errors.New("a result without <bind/> before binding")
			}
			j, _ := bind.Text(xml.Name{Space: c2s.NSBind, Local: "jid"})
			if !strings.HasPrefix(j, "alice@"+fuzzDomain+"/") && !strings.HasPrefix(j, "bob@"+fuzzDomain+"/") {
				return fmt.Errorf("bound to %q", j)
			}
			st.bound, st.full = true, j
			return nil
		case "error":
		default:
			return errors.New("an IQ other than the bind answer before binding")
		}
	}
	if to := el.Attr("to"); to != "" && st.bound {
		if bare, _, _ := strings.Cut(st.full, "/"); to != st.full && to != bare {
			return fmt.Errorf("a stanza for %q on the stream of %q", to, st.full)
		}
	}
	if el.Start.Name.Local == "iq" {
		if el.Attr("id") == "" {
			return errors.New("an IQ without id")
		}
		switch typ {
		case "get", "set":
		case "result":
			st.results[el.Attr("id")] = true
		case "error":
		default:
			return fmt.Errorf("an IQ of type %q", typ)
		}
	}
	if typ != "error" {
		return nil
	}
	var errs []*wire.Element
	for _, c := range fuzzChildren(el) {
		if c.Start.Name == (xml.Name{Space: stanza.NSClient, Local: "error"}) {
			errs = append(errs, c)
		}
	}
	if len(errs) != 1 {
		return fmt.Errorf("an error stanza with %d <error/> children", len(errs))
	}
	if t := errs[0].Attr("type"); !fuzzStanzaErrorTypes[t] {
		return fmt.Errorf("a stanza error of type %q", t)
	}
	if _, err := fuzzCheckErrorChildren(errs[0], fuzzNSStanzaErr, fuzzStanzaConditions); err != nil {
		return fmt.Errorf("stanza error: %w", err)
	}
	return nil
}

// fuzzCheckErrorChildren checks an error element: exactly one defined condition
// in ns, optional <text/> in ns, and at most one element of another namespace
// (an application-specific condition).
func fuzzCheckErrorChildren(el *wire.Element, ns string, conditions map[string]bool) (string, error) {
	var cond []string
	other := 0
	for _, c := range fuzzChildren(el) {
		switch {
		case c.Start.Name.Space == ns && c.Start.Name.Local == "text":
		case c.Start.Name.Space == ns:
			if !conditions[c.Start.Name.Local] {
				return "", fmt.Errorf("undefined condition <%s/>", c.Start.Name.Local)
			}
			cond = append(cond, c.Start.Name.Local)
		default:
			other++
		}
	}
	if len(cond) != 1 {
		return "", fmt.Errorf("%d conditions %v, want exactly one", len(cond), cond)
	}
	if other > 1 {
		return "", fmt.Errorf("%d application-specific conditions", other)
	}
	return cond[0], nil
}

// ---------------------------------------------------------------------------
// FuzzStream: everything before (and, through a pipelined login, after)
// authentication.

var fuzzStreamSeeds = []string{
	"",
	wiretest.Header,
	wiretest.Header + `</stream:stream>`,
	wiretest.Header + "  \n  </stream:stream>",
	`<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xml:lang='fr' from='alice@localhost'>`,
	`<stream xmlns='http://etherx.jabber.org/streams' to='LOCALHOST' version='1.0'>`,
	wiretest.Header + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
	wiretest.Header + `<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>` + "\x16\x03\x01\x00\x05hello",
	wiretest.Header + fuzzPlainAuth("alice", "wonderland"),
	wiretest.Header + fuzzPlainAuth("alice", "wonderland") + `</stream:stream>`,
	fuzzLoginPrefix("fuzz") + `<presence/><message to='alice@localhost/fuzz'><body>hi</body></message><iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq></stream:stream>`,
	fuzzLoginPrefix("fuzz") + `<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`,
	wiretest.Header + fuzzPlainAuth("alice", "wonderland") + wiretest.Header + `<iq type='set' id='s'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`,
	wiretest.Header + fuzzPlainAuth("alice", "wonderland") + wiretest.Header + `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource> </resource></bind></iq><iq type='get' id='b3'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`,
	wiretest.Header + fuzzPlainAuth("alice", "wonderland") + wiretest.Header + `<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>a/b@c` + "\u0301" + `</resource></bind></iq>`,
	wiretest.Header + fuzzPlainAuth("alice", "wonderland") + wiretest.Header + fuzzPlainAuth("alice", "wonderland"),
	wiretest.Header + fuzzPlainAuth("alice", "wonderland") + `<stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
	wiretest.Header + fuzzPlainAuth("alice", "wrong") + fuzzPlainAuth("alice", "wrong") + fuzzPlainAuth("alice", "wrong"),
	wiretest.Header + fuzzPlainAuth("nobody", "x") + fuzzPlainAuth("bob", "wonderland"),
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + base64.StdEncoding.EncodeToString([]byte("bob@localhost\x00alice\x00wonderland")) + `</auth>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>=</auth>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/><response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>AGFsaWNlAHdvbmRlcmxhbmQ=</response>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-FOO'>AA==</auth>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>` + base64.StdEncoding.EncodeToString([]byte("n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL")) + `</auth><response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString([]byte("c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=")) + `</response>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` + base64.StdEncoding.EncodeToString([]byte("y,,n=alice,r=rOprNGfwEbeRWgbNEkqO")) + `</auth><abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
	wiretest.Header + `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256-PLUS'>` + base64.StdEncoding.EncodeToString([]byte("p=tls-exporter,,n=alice,r=abc")) + `</auth>`,
	wiretest.Header + `<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/><abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
	wiretest.Header + `<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`,
	wiretest.Header + `<message to='alice@localhost'><body>hi</body></message>`,
	wiretest.Header + `<foo xmlns='urn:example'/>`,
	wiretest.Header + `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
	wiretest.Header + `<message><body>` + strings.Repeat("a", 2100) + `</body></message>`,
	wiretest.Header + `<message id='` + strings.Repeat("x", 2100) + `'/>`,
	wiretest.Header + strings.Repeat("<a>", 12),
	wiretest.Header + `<message a1='1' a2='2' a3='3' a4='4' a5='5' a6='6' a7='7' a8='8' a9='9'/>`,
	`<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol">]><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
	wiretest.Header + `<!DOCTYPE x [<!ENTITY a "b">]>`,
	wiretest.Header + `<!-- hello -->`,
	wiretest.Header + `<?foo bar?>`,
	wiretest.Header + `<message><body>&lol;</body></message>`,
	wiretest.Header + `<message><body></message>`,
	`<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:wrong'>`,
	`<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`,
	`<stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
	`<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
	`<stream:stream to='localhost' version='2.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
	`<stream:strea to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
	wiretest.Header + `hello<message/>`,
	`<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`,
	"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
}

func FuzzStream(f *testing.F) {
	for _, s := range fuzzStreamSeeds {
		f.Add([]byte(s))
	}
	fs := startFuzzServer(f)
	f.Cleanup(func() {
		if err := fs.healthy(); err != nil {
			f.Error(err)
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		fs.run(t, data)
	})
}

// ---------------------------------------------------------------------------
// FuzzBoundStream: stanzas of a bound session.

var fuzzBoundSeeds = []string{
	``,
	`</stream:stream>`,
	` `,
	`<presence/>`,
	`<presence><show>away</show><status>lunch</status><priority>5</priority></presence>`,
	`<presence><priority>1000</priority></presence><presence type='unavailable'/>`,
	`<presence to='bob@localhost' type='subscribe'/><presence to='bob@localhost' type='subscribed'/><presence to='bob@localhost' type='unsubscribe'/><presence to='bob@localhost' type='unsubscribed'/>`,
	`<presence to='bob@localhost' type='probe'/><presence to='bob@localhost/x'/><presence to='nobody@localhost' type='subscribe'/>`,
	`<presence type='error'/><presence type='bogus'/>`,
	`<message to='alice@localhost/fuzz' type='chat' id='m1'><body>hi</body></message>`,
	`<message to='alice@localhost' type='chat'><body xml:lang='en'>hi</body><x xmlns='urn:a' a:b='c' xmlns:a='urn:b'/></message>`,
	`<message to='bob@localhost' type='chat' id='m2'><body>x</body></message>`,
	`<message to='bob@localhost/nowhere' type='headline'><body>x</body></message>`,
	`<message type='groupchat' to='room@conference.localhost'><body>x</body></message>`,
	`<message id='q1' to='@@@'><body>x</body></message>`,
	`<message from='bob@localhost/x' to='bob@localhost'><body>hi</body></message>`,
	`<message from='alice@localhost' to='alice@localhost/fuzz'><body>from my bare JID</body></message>`,
	`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`,
	`<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver='1'/></iq>`,
	`<iq type='set' id='r2'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item></query></iq>`,
	`<iq type='set' id='r3'><query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query></iq>`,
	`<iq type='set' id='r4'><query xmlns='jabber:iq:roster'><item jid='carol@example.org'/><item jid='dave@example.org'/></query></iq>`,
	`<iq type='set' id='r5'><query xmlns='jabber:iq:roster'><item jid='x@localhost'><group></group><group>a</group><group>a</group></item></query></iq>`,
	`<iq type='get' id='d1' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
	`<iq type='get' id='d2' to='localhost'><query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/></iq>`,
	`<iq type='get' id='d3' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='urn:adhocd:demo:wizard'/></iq>`,
	`<iq type='get' id='d4' to='alice@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
	`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<iq type='get' id='v1' to='localhost'><query xmlns='jabber:iq:version'/></iq>`,
	`<iq type='set' id='c1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:demo:wizard' action='execute'/></iq>`,
	`<iq type='set' id='c2' to='localhost' xml:lang='fr'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:demo:wizard' xml:lang='de'/></iq>`,
	`<iq type='set' id='c3' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:demo:wizard' sessionid='abc' action='next'><x xmlns='jabber:x:data' type='submit'><field var='name'><value>Alice</value></field><field var='color'><value>red</value></field></x></command></iq>`,
	`<iq type='set' id='c4'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:demo:greeting'/></iq>`,
	`<iq type='set' id='c5' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#add-user' action='execute'/></iq>`,
	`<iq type='set' id='c6' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:demo:wizard' action='bogus'/></iq>`,
	`<iq type='get' id='c7' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='urn:adhocd:demo:wizard'/></iq>`,
	`<iq type='get' id='q1' to='localhost'/>`,
	`<iq type='get' id='q1' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<iq type='fetch' id='q1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<iq type='get' id='q1' to='localhost'><query xmlns='urn:example:nothing'/></iq>`,
	`<iq type='get' id='q1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<iq type='get' id='q1' to='bob@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<iq type='get' id='q1' to='alice@localhost/fuzz'><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<iq type='set' id='q1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`,
	`<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`,
	`<iq type='result' id='r1' to='localhost'/><iq type='error' id='r2' to='localhost'/><iq type='result' id='r3'><a/><b/></iq>`,
	`<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>`,
	`<foo/>`,
	`<enable xmlns='urn:xmpp:sm:3'/>`,
	`<enable xmlns='urn:xmpp:sm:3' resume='true'/><iq type='get' id='p' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq><r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='1'/>`,
	`<enable xmlns='urn:xmpp:sm:3'/><enable xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='4294967295'/>`,
	`<a xmlns='urn:xmpp:sm:3' h='x'/>`,
	`<resume xmlns='urn:xmpp:sm:3' previd='00' h='0'/><r xmlns='urn:xmpp:sm:3'/>`,
	`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>`,
	`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`,
	`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`,
	`<message to='alice@localhost/fuzz'><body>` + strings.Repeat("b", 2100) + `</body></message>`,
	`<message to='alice@localhost/fuzz'><body>never ends`,
	`<message to='alice@localhost/fuzz'>` + strings.Repeat("<a>", 9) + strings.Repeat("</a>", 9) + `</message>`,
}

func FuzzBoundStream(f *testing.F) {
	for _, s := range fuzzBoundSeeds {
		f.Add([]byte(s))
	}
	fs := startFuzzServer(f)
	prefix := []byte(fuzzLoginPrefix("fuzz"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		st := fs.run(t, append(append([]byte(nil), prefix...), data...))
		if !st.bound || st.full != "alice@"+fuzzDomain+"/fuzz" {
			t.Fatalf("the login before the input failed (bound %v as %q)", st.bound, st.full)
		}
		for _, u := range []string{"alice", "bob"} {
			items, _, err := fs.s.store.Roster(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			if len(items) > fuzzMaxRoster {
				t.Fatalf("%s's roster holds %d items, more than max_roster_items %d", u, len(items), fuzzMaxRoster)
			}
		}
	})
}
