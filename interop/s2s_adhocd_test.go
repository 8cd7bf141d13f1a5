package interop_test

// This file federates adhocd with the harness's peers
// (docs/design-federation.md §9, "Interop"): adhocd serves adhocd.test with
// its s2s listener on 127.0.0.1:5269 and a static host map to the peer,
// and Prosody 0.12 (prosody.test on 127.0.0.2) or ejabberd 23.01
// (ejabberd.test on 127.0.0.3), started by s2speer_test.go's harness, finds
// adhocd.test through the test's DNS stub: _xmpp-server._tcp.adhocd.test
// SRV to adhocd.test:5269, and adhocd.test's A record 127.0.0.1 (Prosody,
// through libunbound) or the /etc/hosts block (ejabberd, whose A lookups
// go through libc). A slixmpp user on each server (s2s_subscribe.py)
// subscribes to the other's presence and approves the other's request,
// sees the other's presence, sends a message each way and asks disco#info
// of the other's server JID; the other user's unavailable presence arrives
// when it logs out.
//
// Two ways to authenticate, a subtest each:
//
//   - dialback: adhocd's certificate is its self-signed one, which the
//     peer cannot verify (Prosody: s2s_secure_auth = false; ejabberd: no
//     s2s_cafile), and the peer's is self-signed too: both ways use
//     XEP-0220 dialback, on STARTTLS streams.
//   - EXTERNAL: adhocd, Prosody and ejabberd have certificates of one test
//     CA, for their domains, and each trusts that CA (adhocd: s2s.ca_file;
//     Prosody: ssl.cafile with s2s_secure_auth = true; ejabberd:
//     s2s_cafile): both ways use SASL EXTERNAL (RFC 6120 §6.3.4,
//     XEP-0178), and never dialback.
//
// The way each stream authenticated is read on both sides: in adhocd's
// list of streams (Server.S2S: remote domain, direction, auth, TLS) and in
// the peer's log (the lines TestS2SPeersFederate reads, with adhocd.test
// the remote domain). Same requirements as the harness: root, the peers'
// packages and python3-slixmpp; serial (the fixed addresses). S2S_DEBUG=1
// logs adhocd at debug level and slixmpp's XML.

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/s2s/s2stest"
	"github.com/adhocd/adhocd/servertest"
)

const (
	// adhocdDomain is adhocd's domain in the federation tests.
	adhocdDomain = "adhocd.test"
	// adhocdS2SAddr is adhocd's s2s listener: the loopback address the
	// peers do not use, on the standard port, which the SRV record names.
	adhocdS2SAddr = "127.0.0.1:5269"
)

// adhocdPeerCase is a federation peer of adhocd: how to start it, and the
// lines its log says an authentication with adhocd.test succeeded with.
type adhocdPeerCase struct {
	kind  peerKind
	start func(*testing.T, peerOptions) *peer
	// authLines are, for each way of authenticating, the lines (each
	// given as parts that must all be in it) the peer logs when it
	// accepts adhocd.test's stream and when adhocd.test accepts its own.
	authLines map[peerAuth][][]string
}

var (
	adhocdWithProsody = adhocdPeerCase{
		kind:  prosodyKind,
		start: startProsody,
		authLines: map[peerAuth][][]string{
			authDialback: {
				// Inbound: adhocd's db:result, checked with a db:verify.
				{"asking " + adhocdDomain + " if key", "belongs to them"},
				// Outbound: adhocd's verdict on Prosody's key.
				{"Received[s2sout_unauthed]: <result", "type='valid'", "jabber:server:dialback", "from='" + adhocdDomain + "'"},
			},
			authExternal: {
				{"Accepting SASL EXTERNAL identity from " + adhocdDomain},
				{"SASL EXTERNAL with " + adhocdDomain + " succeeded"},
			},
		},
	}
	adhocdWithEjabberd = adhocdPeerCase{
		kind:  ejabberdKind,
		start: startEjabberd,
		authLines: map[peerAuth][][]string{
			authDialback: {
				{"Accepted inbound s2s dialback authentication " + adhocdDomain + " -> " + ejabberdDomain},
				{"Accepted outbound s2s dialback authentication " + ejabberdDomain + " -> " + adhocdDomain},
			},
			authExternal: {
				{"Accepted inbound s2s EXTERNAL authentication " + adhocdDomain + " -> " + ejabberdDomain},
				{"Accepted outbound s2s EXTERNAL authentication " + ejabberdDomain + " -> " + adhocdDomain},
			},
		},
	}
)

// eachPeer runs test once per peer server, Prosody then ejabberd, as a
// subtest named after it that is skipped (failed under CI) when the peer
// is not installed, and logs how long it took.
func eachPeer(t *testing.T, test func(*testing.T, adhocdPeerCase)) {
	for _, pc := range []adhocdPeerCase{adhocdWithProsody, adhocdWithEjabberd} {
		t.Run(pc.kind.name, func(t *testing.T) {
			requirePeer(t, pc.kind)
			begin := time.Now()
			test(t, pc)
			t.Logf("took %v", time.Since(begin).Round(time.Millisecond))
		})
	}
}

// TestS2SAdhocdProsody federates adhocd.test with Prosody's prosody.test,
// by dialback and by SASL EXTERNAL.
func TestS2SAdhocdProsody(t *testing.T) {
	testS2SAdhocd(t, adhocdWithProsody)
}

// TestS2SAdhocdEjabberd federates adhocd.test with ejabberd's
// ejabberd.test, by dialback and by SASL EXTERNAL.
func TestS2SAdhocdEjabberd(t *testing.T) {
	testS2SAdhocd(t, adhocdWithEjabberd)
}

func testS2SAdhocd(t *testing.T, pc adhocdPeerCase) {
	requireSlixmpp(t)
	requirePeer(t, pc.kind)
	for _, tc := range []struct {
		name      string
		auth, not peerAuth
		want      string // adhocd's name of the auth method (s2s.Conn.Auth)
	}{
		{"dialback", authDialback, authExternal, "dialback"},
		{"EXTERNAL", authExternal, authDialback, "external"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			srv, p, dns := federateAdhocd(t, pc, tc.auth)

			// adhocd's side: one stream each way with the peer, on TLS,
			// authenticated as expected.
			out, in := waitS2SConn(t, srv, p.domain, false), waitS2SConn(t, srv, p.domain, true)
			for _, c := range []s2s.Conn{out, in} {
				inbound := c.Inbound
				if c.Auth != tc.want || !c.TLS || c.Local != adhocdDomain {
					t.Errorf("adhocd's %s stream with %s: %+v, want auth %q on TLS from %s",
						direction(inbound), p.domain, c, tc.want, adhocdDomain)
				} else {
					t.Logf("adhocd: %s stream with %s: auth %s, TLS", direction(inbound), c.Remote, c.Auth)
				}
			}

			// The peer's side, in its log.
			for _, parts := range pc.authLines[tc.auth] {
				if line, ok := p.waitLogLine(5*time.Second, parts...); !ok {
					t.Errorf("%s's log has no line with %q", p.kind.name, parts)
				} else {
					t.Logf("%s: %s", p.kind.name, strings.TrimSpace(line))
				}
			}
			for _, parts := range pc.authLines[tc.not] {
				if line, ok := p.logLine(parts...); ok {
					t.Errorf("%s authenticated with adhocd the wrong way: %s", p.kind.name, line)
				}
			}
			checkAdhocdQueries(t, p, dns)
			t.Logf("took %v", time.Since(begin).Round(time.Millisecond))
		})
	}
}

func direction(inbound bool) string {
	if inbound {
		return "inbound"
	}
	return "outbound"
}

// adhocdFederation is adhocd federated with a peer, before any client has
// logged in (startAdhocdFederation).
type adhocdFederation struct {
	srv  *servertest.Server
	peer *peer
	dns  *s2stest.DNS
	// caFile is the PEM file a client of adhocd trusts alone: adhocd's
	// self-signed certificate (dialback), or the test CA (EXTERNAL).
	caFile string
}

// adhocdArgs are the flags a script's user on adhocd takes (serverArgs),
// with the certificate it trusts alone being f.caFile.
func (f *adhocdFederation) adhocdArgs(t *testing.T) []string {
	t.Helper()
	args := serverArgs(t, f.srv)
	args[len(args)-1] = f.caFile // --cafile
	return args
}

// startAdhocdFederation starts the peer of pc for auth, with the accounts
// users (name to password), and adhocd serving adhocd.test with its s2s
// listener on adhocdS2SAddr and a static host map to the peer; it
// publishes adhocd.test in the peer's DNS stub (and, for ejabberd, in
// /etc/hosts). With authDialback adhocd and the peer have self-signed
// certificates; with authExternal certificates of one new test CA, which
// each trusts. configure, if any, edits adhocd's configuration last, just
// before it starts (a WebSocket listener for a browser client, say).
func startAdhocdFederation(t *testing.T, pc adhocdPeerCase, auth peerAuth, users map[string]string, configure ...servertest.Option) *adhocdFederation {
	t.Helper()
	dns := newPeerDNS(t)
	// RFC 6120 §3.2.1: the SRV record of adhocd.test's s2s service, and
	// its target's address.
	dns.SetA(adhocdDomain, netip.MustParseAddr("127.0.0.1"))
	dns.SetSRV("_xmpp-server._tcp."+adhocdDomain, []s2stest.SRV{{Target: adhocdDomain, Port: peerS2SPort}})

	o := peerOptions{Auth: auth, DNS: dns, Users: users}
	if pc.kind.name == ejabberdKind.name {
		// ejabberd looks the SRV target up with libc: /etc/hosts.
		o.Hosts = map[string]string{adhocdDomain: "127.0.0.1"}
	}
	var ca *s2stest.CA
	if auth == authExternal {
		var err error
		if ca, err = s2stest.NewCA("adhocd s2s interop CA"); err != nil {
			t.Fatal(err)
		}
		o.CA = ca
	} else {
		o.SelfSigned = true
	}
	p := pc.start(t, o)

	cfg := servertest.Config(t.TempDir())
	cfg.Domain = adhocdDomain
	cfg.S2S.Listen = adhocdS2SAddr
	cfg.S2S.Hosts = map[string]string{p.domain: net.JoinHostPort(p.addr, strconv.Itoa(peerS2SPort))}
	cfg.Log.Level = "info"
	if os.Getenv("S2S_DEBUG") != "" {
		cfg.Log.Level = "debug"
	}
	var adhocdCAFile string
	if ca != nil {
		// adhocd's certificate (c2s and s2s alike) from the CA, a DNS-ID
		// of adhocd.test for serverAuth and clientAuth, and the CA as
		// the only one remote servers are verified against.
		cert, err := ca.Issue(s2stest.Options{DNS: []string{adhocdDomain}})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cfg.TLS.CertFile, cfg.TLS.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if err := cert.WriteFiles(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
			t.Fatal(err)
		}
		adhocdCAFile = filepath.Join(dir, "ca.pem")
		if err := ca.WritePEM(adhocdCAFile); err != nil {
			t.Fatal(err)
		}
		cfg.S2S.CAFile = adhocdCAFile
	}
	for _, c := range configure {
		c(&cfg)
	}
	srv := servertest.StartConfig(t, cfg)
	f := &adhocdFederation{srv: srv, peer: p, dns: dns, caFile: adhocdCAFile}
	if f.caFile == "" {
		f.caFile = filepath.Join(srv.Dir, "selfsigned-cert.pem")
	}
	return f
}

// federateAdhocd starts the peer of pc and adhocd for auth
// (startAdhocdFederation) and runs s2s_subscribe.py with a user on each,
// checking what it printed. It returns adhocd, the peer and the stub.
func federateAdhocd(t *testing.T, pc adhocdPeerCase, auth peerAuth) (*servertest.Server, *peer, *s2stest.DNS) {
	t.Helper()
	f := startAdhocdFederation(t, pc, auth, map[string]string{"bob": "pw-" + randomHex(t, 8)})
	srv, p, dns := f.srv, f.peer, f.dns
	const alicePW = "wonderland"
	alice := srv.AddUser("alice", alicePW)
	args := f.adhocdArgs(t)

	aBody, bBody := randomBody(t), randomBody(t)
	bob := p.jid("bob")
	args = append(args,
		"--a-jid", alice, "--a-password", alicePW,
		"--b-host", p.addr, "--b-port", strconv.Itoa(peerC2SPort), "--b-cafile", p.caFile,
		"--b-jid", bob, "--b-password", p.users["bob"],
		"--a-body", aBody, "--b-body", bBody,
		"--tls-max", "1.2", "--timeout", "100",
	)
	sc := startScript(t, 120*time.Second, "s2s_subscribe.py", withDebug(args, "S2S_DEBUG")...)
	if err := sc.wait(); err != nil {
		t.Fatalf("s2s_subscribe.py: %v", err)
	}
	lines := sc.restLines
	got := byWord(lines)
	for _, want := range []struct{ word, line string }{
		{"SUBSCRIBE", "b " + alice},
		{"SUBSCRIBED", "a " + bob},
		{"SUBSCRIBE", "a " + bob},
		{"SUBSCRIBED", "b " + alice},
		{"SUBSCRIPTION", "a " + bob + " both"},
		{"SUBSCRIPTION", "b " + alice + " both"},
		{"RECEIVED", "b " + alice + " " + aBody},
		{"RECEIVED", "a " + bob + " " + bBody},
	} {
		if !slices.Contains(got[want.word], want.line) {
			t.Errorf("%s %q, want %q", want.word, got[want.word], want.line)
		}
	}
	// The roster pushes (RFC 6121 §3.1.2, §3.1.6): the contact, with
	// ask='subscribe' while pending, ends with subscription both.
	for _, who := range []struct{ role, contact string }{{"a", bob}, {"b", alice}} {
		if !slices.ContainsFunc(got["ROSTER"], func(s string) bool { return strings.HasPrefix(s, who.role+" "+who.contact+" both ") }) {
			t.Errorf("ROSTER %q: no push of %s with subscription both to %s", got["ROSTER"], who.contact, who.role)
		}
	}
	// Presence: each sees the other's full JID available (after the
	// approval), and b sees a go unavailable.
	for _, want := range []struct{ word, prefix string }{
		{"AVAILABLE", "a " + bob + "/"},
		{"AVAILABLE", "b " + alice + "/"},
		{"UNAVAILABLE", "b " + alice + "/"},
	} {
		if !slices.ContainsFunc(got[want.word], func(s string) bool { return strings.HasPrefix(s, want.prefix) }) {
			t.Errorf("%s %q, want one of %s*", want.word, got[want.word], want.prefix)
		}
	}
	// disco#info of the remote server JIDs: a server/im identity and
	// some features each way.
	for _, want := range []string{"a " + p.domain + " ", "b " + adhocdDomain + " "} {
		if !slices.ContainsFunc(got["DISCO"], func(s string) bool {
			f := strings.Fields(strings.TrimPrefix(s, want))
			return strings.HasPrefix(s, want) && len(f) == 2 && f[0] != "0" && slices.Contains(strings.Split(f[1], ","), "server/im")
		}) {
			t.Errorf("DISCO %q, want features and server/im for %q", got["DISCO"], want)
		}
	}
	if !slices.Contains(lines, "OK") {
		t.Error("s2s_subscribe.py did not print OK")
	}
	return srv, p, dns
}

// waitS2SConn returns adhocd's authenticated stream with remote in the
// direction asked, or fails the test after 10 s.
func waitS2SConn(t *testing.T, srv *servertest.Server, remote string, inbound bool) s2s.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, c := range srv.S2S() {
			if c.Remote == remote && c.Inbound == inbound && c.Auth != "" {
				return c
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("adhocd has no authenticated %s stream with %s: %+v", direction(inbound), remote, srv.S2S())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkAdhocdQueries checks that the peer found adhocd.test through the
// DNS stub: its SRV question (both peers) and its A question (Prosody;
// ejabberd's goes to /etc/hosts) reached it.
func checkAdhocdQueries(t *testing.T, p *peer, dns *s2stest.DNS) {
	t.Helper()
	qs := []struct {
		name string
		typ  dnsmessage.Type
	}{{"_xmpp-server._tcp." + adhocdDomain, dnsmessage.TypeSRV}}
	if p.kind.name == prosodyKind.name {
		qs = append(qs, struct {
			name string
			typ  dnsmessage.Type
		}{adhocdDomain, dnsmessage.TypeA})
	}
	for _, q := range qs {
		if !dns.Asked(q.name, q.typ) {
			t.Errorf("%s never asked the DNS stub for %s %s", p.kind.name, q.name, q.typ)
		}
	}
	var asked []string
	for _, q := range dns.Queries() {
		asked = append(asked, q.String())
	}
	t.Logf("DNS stub queries:\n%s", strings.Join(asked, "\n"))
}
