package s2s_test

import (
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/s2s"
	"github.com/adhocd/adhocd/s2s/s2stest"
	"github.com/adhocd/adhocd/servertest"
)

// SASL EXTERNAL between two adhocd (RFC 6120 §6, XEP-0178) with
// certificates of a test CA, and what happens when one side's certificate
// cannot be verified (docs/design-federation.md §4, §5, §9 "Auth").

// useCACert gives cfg a certificate for its domain issued by ca (a DNS-ID
// SAN), written into its storage folder, and makes it trust ca for the
// certificates of remote servers (s2s.ca_file).
func useCACert(t *testing.T, ca *s2stest.CA, cfg *config.Config) {
	t.Helper()
	issueCert(t, ca, cfg)
	trustCA(t, ca, cfg)
}

// issueCert sets cfg's certificate (tls.cert_file, tls.key_file) to one
// ca issues for cfg.Domain.
func issueCert(t *testing.T, ca *s2stest.CA, cfg *config.Config) {
	t.Helper()
	cert, err := ca.Issue(s2stest.Options{DNS: []string{cfg.Domain}})
	if err != nil {
		t.Fatal(err)
	}
	dir := cfg.Storage.Path
	cfg.TLS.CertFile, cfg.TLS.KeyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := cert.WriteFiles(cfg.TLS.CertFile, cfg.TLS.KeyFile); err != nil {
		t.Fatal(err)
	}
}

// trustCA makes cfg verify remote servers' certificates against ca alone.
func trustCA(t *testing.T, ca *s2stest.CA, cfg *config.Config) {
	t.Helper()
	cfg.S2S.CAFile = filepath.Join(cfg.Storage.Path, "ca.pem")
	if err := ca.WritePEM(cfg.S2S.CAFile); err != nil {
		t.Fatal(err)
	}
}

// clientTLS makes srv's clients trust ca, which issued the certificate its
// c2s listener now serves (servertest only knows the self-signed one).
func clientTLS(srv *servertest.Server, ca *s2stest.CA) {
	srv.ClientTLS = &tls.Config{RootCAs: ca.Pool(), ServerName: srv.Domain().String(), MinVersion: tls.VersionTLS12}
}

// exchange has alice@a.test and bob@b.test, both online, send each other a
// message, and waits for each to arrive.
func exchange(t *testing.T, a, b *servertest.Server) {
	t.Helper()
	alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
	ctx := servertest.Context(t, 20*time.Second)
	if err := alice.SendRaw(ctx, "<message to='bob@b.test' type='chat' id='m1'><body>hello from a</body></message>"); err != nil {
		t.Fatal(err)
	}
	bob.Next(crossing, isMessage("alice@a.test/", "hello from a"))
	if err := bob.SendRaw(ctx, "<message to='alice@a.test' type='chat' id='m2'><body>hello from b</body></message>"); err != nil {
		t.Fatal(err)
	}
	alice.Next(crossing, isMessage("bob@b.test/", "hello from b"))
}

// verifiedPair starts a.test and b.test with start (pair, or
// directTLSPair) holding certificates of one test CA, each trusting it and
// requiring valid certificates, and their clients trusting it too; edit,
// if not nil, changes both configurations further.
func verifiedPair(t *testing.T, start func(*testing.T, func(a, b *config.Config)) (*servertest.Server, *servertest.Server), edit func(a, b *config.Config)) (a, b *servertest.Server) {
	t.Helper()
	ca := newCA(t, "adhocd s2s test CA")
	a, b = start(t, func(a, b *config.Config) {
		for _, c := range []*config.Config{a, b} {
			useCACert(t, ca, c)
			c.S2S.RequireValidCertificates = true
		}
		if edit != nil {
			edit(a, b)
		}
	})
	clientTLS(a, ca)
	clientTLS(b, ca)
	return a, b
}

// TestExternalBothWays: a.test and b.test with certificates of one test
// CA, each trusting it and requiring valid certificates, authenticate
// their streams with SASL EXTERNAL both ways, over TLS.
func TestExternalBothWays(t *testing.T) {
	a, b := verifiedPair(t, pair, nil)
	exchange(t, a, b)
	for _, c := range []s2s.Conn{conn(t, a, "b.test", false), conn(t, a, "b.test", true), conn(t, b, "a.test", false), conn(t, b, "a.test", true)} {
		if c.Auth != "external" || !c.TLS {
			t.Errorf("stream %+v: want SASL EXTERNAL over TLS", c)
		}
	}
	for _, srv := range []*servertest.Server{a, b} {
		for _, c := range srv.S2S() {
			if c.Auth == "dialback" {
				t.Errorf("%s: a dialback stream while only EXTERNAL is allowed: %+v", srv.Domain(), c)
			}
		}
	}
}

// stanzaError returns the defined condition and the type of the <error/>
// of a stanza, as servertest received it.
func stanzaError(t *testing.T, s servertest.Stanza) (cond, typ, by string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(s.XML))
	depth := 0
	inError := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("error stanza %s: %v", s.XML, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && tok.Name.Local == "error":
				inError = true
				for _, a := range tok.Attr {
					switch a.Name.Local {
					case "type":
						typ = a.Value
					case "by":
						by = a.Value
					}
				}
			case depth == 3 && inError && tok.Name.Space == "urn:ietf:params:xml:ns:xmpp-stanzas" && tok.Name.Local != "text" && cond == "":
				cond = tok.Name.Local
			}
		case xml.EndElement:
			if depth == 2 {
				inError = false
			}
			depth--
		}
	}
	if cond == "" {
		t.Fatalf("no stanza error condition in %s", s.XML)
	}
	return cond, typ, by
}

// TestExternalRequiredPeerSelfSigned: a.test requires valid certificates;
// b.test presents its self-signed one. The TLS handshake of a.test's
// stream fails once b.test has answered with a stream header, so alice's
// message comes back with remote-server-timeout (wait), the design's §4 row
// "a stream opened, then … TLS … failure", well within connect_timeout;
// and neither server has an authenticated stream.
func TestExternalRequiredPeerSelfSigned(t *testing.T) {
	ca := newCA(t, "adhocd s2s test CA")
	const connectTimeout = 3 * time.Second
	a, b := pair(t, func(a, b *config.Config) {
		useCACert(t, ca, a)
		a.S2S.RequireValidCertificates = true
		a.S2S.ConnectTimeout = config.Duration(connectTimeout)
		b.S2S.ConnectTimeout = config.Duration(connectTimeout)
	})
	clientTLS(a, ca)
	alice := online(t, a, "alice", "wonderland")
	b.AddUser("bob", "builder")
	ctx := servertest.Context(t, 20*time.Second)
	sent := time.Now()
	if err := alice.SendRaw(ctx, "<message to='bob@b.test' type='chat' id='m1'><body>hello from a</body></message>"); err != nil {
		t.Fatal(err)
	}
	got := alice.Next(connectTimeout+2*time.Second, func(s servertest.Stanza) bool {
		return s.Name == "message" && s.Attrs["type"] == "error" && s.Attrs["id"] == "m1"
	})
	took := time.Since(sent)
	if took > connectTimeout {
		t.Errorf("the bounce took %v, more than connect_timeout %v", took, connectTimeout)
	}
	cond, typ, by := stanzaError(t, got)
	// §4's table: a stream opened (b.test answered the header), then TLS
	// failed.
	if cond != "remote-server-timeout" || typ != "wait" {
		t.Errorf("bounce %s: condition %s (%s), want remote-server-timeout (wait)", got.XML, cond, typ)
	}
	if by != "a.test" {
		t.Errorf("bounce %s: by=%q, want a.test", got.XML, by)
	}
	if !strings.HasPrefix(got.Attrs["from"], "bob@b.test") {
		t.Errorf("bounce from %q, want bob@b.test", got.Attrs["from"])
	}
	// Whatever b.test kept of the refused connection goes; nothing was
	// ever authenticated, on either side.
	deadline := time.Now().Add(servertest.Wait)
	for {
		var authed []s2s.Conn
		for _, srv := range []*servertest.Server{a, b} {
			for _, c := range srv.S2S() {
				if c.Auth != "" {
					authed = append(authed, c)
				}
			}
		}
		if len(authed) > 0 {
			t.Fatalf("authenticated streams: %+v", authed)
		}
		if len(a.S2S()) == 0 && len(b.S2S()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streams left after the failure: a.test %+v, b.test %+v", a.S2S(), b.S2S())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExternalOneWay: neither server requires valid certificates. a.test
// has a CA-issued certificate that b.test trusts, b.test its self-signed
// one: b.test offers EXTERNAL to a.test, which uses it, while a.test, who
// cannot verify b.test, offers only dialback.
func TestExternalOneWay(t *testing.T) {
	ca := newCA(t, "adhocd s2s test CA")
	a, b := pair(t, func(a, b *config.Config) {
		useCACert(t, ca, a)
		trustCA(t, ca, b)
	})
	clientTLS(a, ca)
	exchange(t, a, b)
	for _, w := range []struct {
		c    s2s.Conn
		auth string
	}{
		{conn(t, a, "b.test", false), "external"},
		{conn(t, b, "a.test", true), "external"},
		{conn(t, b, "a.test", false), "dialback"},
		{conn(t, a, "b.test", true), "dialback"},
	} {
		if w.c.Auth != w.auth || !w.c.TLS {
			t.Errorf("stream %+v: want %s over TLS", w.c, w.auth)
		}
	}
}

// TestExternalBlacklisted: b.test has a.test on its blacklist. Although
// a.test's certificate verifies, b.test refuses its SASL EXTERNAL, as it
// refuses its dialback: alice's message comes back as an error, bob gets
// nothing, and b.test has no authenticated stream from a.test.
func TestExternalBlacklisted(t *testing.T) {
	a, b := verifiedPair(t, pair, func(a, b *config.Config) {
		a.S2S.ConnectTimeout, b.S2S.ConnectTimeout = config.Duration(3*time.Second), config.Duration(3*time.Second)
	})
	ctx := servertest.Context(t, 20*time.Second)
	if err := b.SetAccessLists(ctx, []string{"a.test"}, nil); err != nil {
		t.Fatal(err)
	}
	alice, bob := online(t, a, "alice", "wonderland"), online(t, b, "bob", "builder")
	if err := alice.SendRaw(ctx, "<message to='bob@b.test' type='chat' id='m1'><body>let me in</body></message>"); err != nil {
		t.Fatal(err)
	}
	got := alice.Next(crossing, func(s servertest.Stanza) bool { return s.Name == "message" && s.Attrs["type"] == "error" })
	if cond, _, _ := stanzaError(t, got); cond != "remote-server-timeout" && cond != "remote-server-not-found" {
		t.Fatalf("alice got %s, want remote-server-timeout or remote-server-not-found", got.XML)
	}
	if s, ok := bob.Wait(time.Second, isMessage("alice@a.test/", "let me in")); ok {
		t.Fatalf("bob got a message from a blacklisted domain: %s", s.XML)
	}
	for _, c := range b.S2S() {
		if c.Remote == "a.test" && c.Auth != "" {
			t.Fatalf("b.test authenticated a blacklisted domain: %+v", c)
		}
	}
}
