package c2s_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// TestStreamErrors sends what RFC 6120 forbids, before authentication, and
// checks that the exact stream error comes back, that the stream is closed,
// and that the server goes on serving a well-behaved client.
func TestStreamErrors(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.MaxStanzaBytes = 4096
		c.Limits.MaxDepth = 8
		c.Limits.MaxAttributes = 10
	})
	srv.AddUser("alice", "wonderland")
	h := servertest.Header
	cases := []struct {
		name, send, condition string
	}{
		{"stanza over max_stanza_bytes", h + `<message><body>` + strings.Repeat("a", 5000) + `</body></message>`, "policy-violation"},
		{"text that never ends", h + `<message><body>` + strings.Repeat("a", 9000), "policy-violation"},
		{"attribute value over max_stanza_bytes", h + `<message id='` + strings.Repeat("x", 5000) + `'/>`, "policy-violation"},
		{"nesting deeper than max_depth", h + strings.Repeat("<a>", 20), "policy-violation"},
		{"more attributes than max_attributes", h + `<message a1='1' a2='2' a3='3' a4='4' a5='5' a6='6' a7='7' a8='8' a9='9' a10='10' a11='11'/>`, "policy-violation"},
		{"DTD before the stream", `<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol">]><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "restricted-xml"},
		{"DTD inside the stream", h + `<!DOCTYPE x [<!ENTITY a "b">]>`, "restricted-xml"},
		{"comment", h + `<!-- hello -->`, "restricted-xml"},
		{"processing instruction", h + `<?foo bar?>`, "restricted-xml"},
		{"undeclared entity reference", h + `<message><body>&lol;</body></message>`, "restricted-xml"},
		{"not well-formed", h + `<message><body></message>`, "not-well-formed"},
		{"wrong stream namespace", `<stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='urn:wrong'>`, "invalid-namespace"},
		{"wrong content namespace", `<stream:stream to='localhost' version='1.0' xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>`, "invalid-namespace"},
		{"unknown host", `<stream:stream to='example.org' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "host-unknown"},
		{"no version", `<stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "unsupported-version"},
		{"version 2.0", `<stream:stream to='localhost' version='2.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "unsupported-version"},
		{"wrong root element", `<stream:strea to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "bad-format"},
		{"message before authentication", h + `<message to='alice@localhost'><body>hi</body></message>`, "not-authorized"},
		{"iq before authentication", h + `<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`, "not-authorized"},
		{"unknown top-level element", h + `<foo xmlns='urn:example'/>`, "invalid-namespace"},
		{"text between stanzas", h + `hello<message/>`, "bad-format"},
		{"non-UTF-8 encoding", `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, "unsupported-encoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := srv.RawDial()
			r.Write(tc.send)
			got, _ := r.ClosedByServer(5 * time.Second)
			want := "<" + tc.condition + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
			if !strings.Contains(got, want) {
				t.Fatalf("want stream error %s, got %q", tc.condition, got)
			}
			if !strings.HasSuffix(got, "</stream:stream>") {
				t.Fatalf("stream not closed after the error: %q", got)
			}
			if !strings.Contains(got, "<stream:stream") {
				t.Fatalf("no stream header before the error: %q", got)
			}
			// Others are still served.
			c := srv.Dial("alice", "wonderland", "")
			if err := c.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
		})
	}
}

func TestPreAuthTimeout(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) {
		c.Limits.PreAuthTimeout = config.Duration(300 * time.Millisecond)
	})
	r := srv.RawDial()
	r.Write(servertest.Header)
	start := time.Now()
	got, _ := r.ClosedByServer(5 * time.Second)
	if !strings.Contains(got, "<connection-timeout") {
		t.Fatalf("want connection-timeout, got %q", got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %s, want about 300ms", d)
	}
}

func TestAuthFailuresLimit(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxAuthFailures = 2 })
	srv.AddUser("alice", "wonderland")
	r := srv.RawDial()
	r.StartTLS(srv.ClientTLS)
	bad := `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>` // \0alice\0wrong
	r.Write(bad)
	if got := r.Expect(`</failure>`); !strings.Contains(got, "<not-authorized/>") {
		t.Fatalf("first failure: %q", got)
	}
	r.Write(bad)
	got, _ := r.ClosedByServer(5 * time.Second)
	if !strings.Contains(got, "<not-authorized/>") || !strings.Contains(got, "<policy-violation") {
		t.Fatalf("want not-authorized then policy-violation, got %q", got)
	}
	srv.Dial("alice", "wonderland", "")
}

func TestSASLFailures(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("alice", "wonderland")
	t.Run("auth before STARTTLS when TLS is required", func(t *testing.T) {
		r := srv.RawDial()
		r.Write(servertest.Header)
		feats := r.Expect(`</stream:features>`)
		if strings.Contains(feats, "<mechanisms") || !strings.Contains(feats, "<required/>") {
			t.Fatalf("features before TLS: %q", feats)
		}
		r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>`)
		if got := r.Expect(`</failure>`); !strings.Contains(got, "<encryption-required/>") {
			t.Fatalf("want encryption-required, got %q", got)
		}
	})
	for _, tc := range []struct{ name, send, cond string }{
		{"unknown mechanism", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-FOO'>AA==</auth>`, "invalid-mechanism"},
		{"bad base64", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>`, "incorrect-encoding"},
		{"malformed PLAIN", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + "YWxpY2U=" + `</auth>`, "malformed-request"},
		{"unknown user", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGJvYgB3b25kZXJsYW5k</auth>`, "not-authorized"},
		{"foreign authzid", `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` + "Ym9iQGxvY2FsaG9zdABhbGljZQB3b25kZXJsYW5k" + `</auth>`, "invalid-authzid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := srv.RawDial()
			r.StartTLS(srv.ClientTLS)
			r.Write(tc.send)
			if got := r.Expect(`</failure>`); !strings.Contains(got, "<"+tc.cond+"/>") {
				t.Fatalf("want %s, got %q", tc.cond, got)
			}
		})
	}
	t.Run("abort", func(t *testing.T) {
		r := srv.RawDial()
		r.StartTLS(srv.ClientTLS)
		r.Write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>`)
		r.Expect(`<challenge`)
		r.Write(`<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
		if got := r.Expect(`</failure>`); !strings.Contains(got, "<aborted/>") {
			t.Fatalf("want aborted, got %q", got)
		}
	})
	t.Run("data injected after starttls", func(t *testing.T) {
		r := srv.RawDial()
		r.Write(servertest.Header)
		r.Expect(`</stream:features>`)
		r.Write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHdvbmRlcmxhbmQ=</auth>`)
		got, _ := r.ClosedByServer(5 * time.Second)
		if strings.Contains(got, "<proceed") || !strings.Contains(got, "<policy-violation") {
			t.Fatalf("want policy-violation without proceed, got %q", got)
		}
	})
}

// TestStanzaErrorsAfterBind covers the stream and stanza errors of a bound
// session.
func TestStanzaErrorsAfterBind(t *testing.T) {
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MaxStanzaBytes = 4096 })
	srv.AddUser("alice", "wonderland")
	srv.AddUser("bob", "builder")
	streamCases := []struct{ name, send, cond string }{
		{"spoofed from", `<message from='bob@localhost/x' to='bob@localhost'><body>hi</body></message>`, "invalid-from"},
		{"unsupported element", `<foo/>`, "unsupported-stanza-type"},
		{"foreign element", `<enable xmlns='urn:xmpp:nothing:0'/>`, "unsupported-stanza-type"},
		{"oversized stanza", `<message to='bob@localhost'><body>` + strings.Repeat("b", 5000) + `</body></message>`, "policy-violation"},
		{"iq without id", `<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>`, "bad-format"},
	}
	for _, tc := range streamCases {
		t.Run(tc.name, func(t *testing.T) {
			r := srv.RawLogin("alice", "wonderland", "raw")
			r.Write(tc.send)
			got, _ := r.ClosedByServer(5 * time.Second)
			if !strings.Contains(got, "<"+tc.cond+" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") {
				t.Fatalf("want %s, got %q", tc.cond, got)
			}
			srv.Dial("bob", "builder", "")
		})
	}
	stanzaCases := []struct{ name, send, cond string }{
		{"iq with no payload", `<iq type='get' id='q1' to='localhost'/>`, "bad-request"},
		{"iq with two payloads", `<iq type='get' id='q1' to='localhost'><ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>`, "bad-request"},
		{"iq with a bad type", `<iq type='fetch' id='q1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, "bad-request"},
		{"unknown iq payload", `<iq type='get' id='q1' to='localhost'><query xmlns='urn:example:nothing'/></iq>`, "service-unavailable"},
		{"malformed to", `<message id='q1' to='@@@'><body>x</body></message>`, "jid-malformed"},
		{"remote domain", `<iq type='get' id='q1' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>`, "remote-server-not-found"},
		{"message to a user that does not exist", `<message id='q1' type='chat' to='nobody@localhost'><body>x</body></message>`, "service-unavailable"},
		{"iq to an offline resource", `<iq type='get' id='q1' to='bob@localhost/gone'><ping xmlns='urn:xmpp:ping'/></iq>`, "service-unavailable"},
		{"second bind", `<iq type='set' id='q1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`, "not-allowed"},
	}
	r := srv.RawLogin("alice", "wonderland", "raw")
	for _, tc := range stanzaCases {
		t.Run(tc.name, func(t *testing.T) {
			r.Write(tc.send)
			got := r.Expect(`id=.q1.[^>]*>.*</(iq|message)>`)
			if !strings.Contains(got, "type=\"error\"") && !strings.Contains(got, "type='error'") {
				t.Fatalf("want an error reply, got %q", got)
			}
			if !strings.Contains(got, "<"+tc.cond+" xmlns=\"urn:ietf:params:xml:ns:xmpp-stanzas\"") {
				t.Fatalf("want %s, got %q", tc.cond, got)
			}
		})
	}
	t.Run("iq result is never answered", func(t *testing.T) {
		r.Write(`<iq type='result' id='r1' to='localhost'/><iq type='error' id='r2' to='localhost'/><iq type='get' id='r3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
		got := r.Expect(`id="r3"`)
		if strings.Contains(got, `"r1"`) || strings.Contains(got, `"r2"`) {
			t.Fatalf("a result or error was answered: %q", got)
		}
	})
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
