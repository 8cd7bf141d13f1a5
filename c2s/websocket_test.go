package c2s_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

func wsServer(t *testing.T, opts ...servertest.Option) *servertest.Server {
	t.Helper()
	return servertest.Start(t, append([]servertest.Option{servertest.WithWebSocket, func(c *config.Config) {
		c.Admins = []string{"admin@localhost"}
	}}, opts...)...)
}

// TestWebSocketSession: a web client's whole session over RFC 7395 framing
// on the plain listener: <open/>, features without STARTTLS, SCRAM, the
// stream restart with a new <open/>, bind, an admin command on the server
// JID, a chat message to a TCP client and its answer, and <close/>
// answered with <close/>. Every message is one element that declares its
// namespaces.
func TestWebSocketSession(t *testing.T) {
	srv := wsServer(t)
	srv.AddUser("admin", "pw")
	srv.AddUser("bob", "pw")

	ws := srv.DialWS(servertest.WSOptions{})
	if ws.Subprotocol != "xmpp" {
		t.Fatalf("subprotocol %q, want xmpp", ws.Subprotocol)
	}
	ws.Send(`<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>`)
	open := ws.Expect(`^<open `)
	if !strings.Contains(open, `xmlns='urn:ietf:params:xml:ns:xmpp-framing'`) || !strings.HasSuffix(open, "/>") || !strings.Contains(open, `from='localhost'`) {
		t.Fatalf("server's open: %s", open)
	}
	features := ws.Expect(`^<stream:features`)
	if !strings.HasPrefix(features, `<stream:features xmlns:stream='http://etherx.jabber.org/streams'>`) ||
		strings.Contains(features, "starttls") || !strings.Contains(features, "SCRAM-SHA-256") {
		t.Fatalf("features over WebSocket: %s", features)
	}
	ws.Close()

	admin := srv.DialWS(servertest.WSOptions{})
	admin.Login("admin", "pw", "web")
	admin.Send(`<presence xmlns='jabber:client'/>`)
	admin.Expect(`^<presence xmlns="jabber:client"[^>]*from="admin@localhost/web"`)

	admin.Send(`<iq xmlns='jabber:client' type='set' id='c1' to='localhost'><command xmlns='http://jabber.org/protocol/commands' node='http://jabber.org/protocol/admin#get-online-users-num' action='execute'/></iq>`)
	res := admin.Expect(`id="c1"`)
	if !strings.HasPrefix(res, `<iq xmlns="jabber:client"`) || !strings.Contains(res, `status="completed"`) ||
		!strings.Contains(res, `var="onlineusersnum"`) || !strings.Contains(res, `<value>1</value>`) {
		t.Fatalf("get-online-users-num over WebSocket: %s", res)
	}

	bob := srv.RawLogin("bob", "pw", "tcp")
	bob.Write(`<presence/>`)
	bob.Expect(`<presence[^>]*from="bob@localhost/tcp"`)
	admin.Send(`<message xmlns='jabber:client' to='bob@localhost/tcp' type='chat' id='m1'><body>from the web ✓</body></message>`)
	if got := bob.Expect(`</message>`); !strings.Contains(got, `from="admin@localhost/web"`) || !strings.Contains(got, "<body>from the web ✓</body>") {
		t.Fatalf("TCP client got %s", got)
	}
	bob.Write(`<message to='admin@localhost/web' type='chat'><body>from TCP &amp; back</body></message>`)
	msg := admin.Expect(`^<message`)
	if !strings.HasPrefix(msg, `<message xmlns="jabber:client"`) || !strings.Contains(msg, `<body>from TCP &amp; back</body>`) {
		t.Fatalf("WebSocket client got %s", msg)
	}

	// A stanza without xmlns is taken as jabber:client (lenient).
	admin.Send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if got := admin.Expect(`id="p1"`); !strings.Contains(got, `type="result"`) {
		t.Fatalf("ping without xmlns: %s", got)
	}

	admin.Send(`<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>`)
	admin.Expect(`^<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>$`)
}

// TestWebSocketLimits: the c2s limits apply as on TCP, each answered with
// its stream error in a message of its own and then <close/>.
func TestWebSocketLimits(t *testing.T) {
	srv := wsServer(t, func(c *config.Config) {
		c.Limits.MaxStanzaBytes = 2048
		c.Limits.PreAuthTimeout = config.Duration(time.Second)
	})
	srv.AddUser("alice", "pw")
	for _, tc := range []struct {
		name, send, want string
	}{
		{"stanza over max_stanza_bytes", `<iq xmlns='jabber:client' type='get' id='x'><query xmlns='jabber:iq:version'>` + strings.Repeat("a", 4096) + `</query></iq>`, "policy-violation"},
		{"comment", `<!-- no -->`, "restricted-xml"},
		{"not well-formed", `<iq xmlns='jabber:client'><a></b></iq>`, "not-well-formed"},
		{"nothing sent before the pre-auth timeout", "", "connection-timeout"},
		{"stanza before authentication", `<message xmlns='jabber:client' to='alice@localhost'><body>x</body></message>`, "not-authorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ws := srv.DialWS(servertest.WSOptions{})
			ws.Open()
			if tc.send != "" {
				ws.Send(tc.send)
			}
			se := ws.Expect(`^<stream:error`)
			if !strings.HasPrefix(se, `<stream:error xmlns:stream='http://etherx.jabber.org/streams'><`+tc.want+` `) {
				t.Fatalf("stream error %s, want %s", se, tc.want)
			}
			ws.Expect(`^<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>$`)
		})
	}
	// A TCP stream header is not an RFC 7395 <open/>.
	ws := srv.DialWS(servertest.WSOptions{})
	ws.Send(servertest.Header)
	ws.Expect(`^<open `)
	if se := ws.Expect(`^<stream:error`); !strings.Contains(se, "<bad-format ") {
		t.Fatalf("stream header over WebSocket: %s", se)
	}
	// And after all that, a client still logs in.
	srv.DialWS(servertest.WSOptions{}).Login("alice", "pw", "after")
}

// TestWebSocketHandshake: the xmpp subprotocol is required, and browsers
// may connect only from allowed origins: with none configured, pages of the
// listener's own host; clients that send no Origin (not a browser) always.
func TestWebSocketHandshake(t *testing.T) {
	srv := wsServer(t)
	host := strings.TrimPrefix(strings.TrimSuffix(srv.WSURL, "/xmpp-websocket"), "ws://")
	origin := func(o string) http.Header { return http.Header{"Origin": {o}} }
	for _, tc := range []struct {
		name   string
		opts   servertest.WSOptions
		status int
	}{
		{"no subprotocol", servertest.WSOptions{Subprotocols: []string{}}, http.StatusBadRequest},
		{"another subprotocol", servertest.WSOptions{Subprotocols: []string{"mqtt"}}, http.StatusBadRequest},
		{"another site's page", servertest.WSOptions{Header: origin("https://evil.example")}, http.StatusForbidden},
		{"a page of the same host", servertest.WSOptions{Header: origin("http://" + host)}, http.StatusSwitchingProtocols},
		{"no origin", servertest.WSOptions{}, http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, resp, err := servertest.DialWSErr(srv.WSURL, tc.opts)
			if w != nil {
				w.Close()
			}
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("response %v (%v), want status %d", resp, err, tc.status)
			}
		})
	}

	listed := wsServer(t, func(c *config.Config) { c.WebSocket.AllowedOrigins = []string{"https://chat.example.org"} })
	for o, want := range map[string]int{"https://chat.example.org": 101, "http://chat.example.org": 403, "https://other.example.org": 403} {
		w, resp, err := servertest.DialWSErr(listed.WSURL, servertest.WSOptions{Header: origin(o)})
		if w != nil {
			w.Close()
		}
		if resp == nil || resp.StatusCode != want {
			t.Errorf("origin %s: %v (%v), want %d", o, resp, err, want)
		}
	}
}

// TestWebSocketDiscovery: XEP-0156 host-meta in XRD and JRD names the
// endpoint, readable from any origin.
func TestWebSocketDiscovery(t *testing.T) {
	srv := wsServer(t)
	base := "http" + strings.TrimSuffix(strings.TrimPrefix(srv.WSURL, "ws"), "/xmpp-websocket")
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, xrd := get("/.well-known/host-meta")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(xrd, `<Link rel="urn:xmpp:alt-connections:websocket" href="`+srv.WSURL+`"/>`) {
		t.Fatalf("host-meta: %d %v\n%s", resp.StatusCode, resp.Header, xrd)
	}
	resp, jrd := get("/.well-known/host-meta.json")
	var doc struct {
		Links []struct{ Rel, Href string } `json:"links"`
	}
	if err := json.Unmarshal([]byte(jrd), &doc); err != nil || resp.StatusCode != 200 ||
		len(doc.Links) != 1 || doc.Links[0].Rel != "urn:xmpp:alt-connections:websocket" || doc.Links[0].Href != srv.WSURL {
		t.Fatalf("host-meta.json: %d %v %s", resp.StatusCode, err, jrd)
	}

	public := wsServer(t, func(c *config.Config) { c.WebSocket.PublicURL = "wss://chat.example.org/xmpp-websocket" })
	resp2, err := http.Get("http" + strings.TrimSuffix(strings.TrimPrefix(public.WSURL, "ws"), "/xmpp-websocket") + "/.well-known/host-meta.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	b, _ := io.ReadAll(resp2.Body)
	if !strings.Contains(string(b), `"href":"wss://chat.example.org/xmpp-websocket"`) {
		t.Fatalf("public_url not advertised: %s", b)
	}
}

// TestWebSocketTLS: with websocket.tls the listener serves wss:// with the
// c2s certificate, and the stream offers channel binding, which a client
// that binds to tls-exporter uses.
func TestWebSocketTLS(t *testing.T) {
	srv := wsServer(t, func(c *config.Config) { c.WebSocket.TLS = true })
	srv.AddUser("alice", "pw")
	if !strings.HasPrefix(srv.WSURL, "wss://") {
		t.Fatalf("WSURL %s", srv.WSURL)
	}
	ws := srv.DialWS(servertest.WSOptions{TLS: srv.ClientTLS})
	features := ws.Open()
	if !strings.Contains(features, "SCRAM-SHA-256-PLUS") || !strings.Contains(features, "<channel-binding type='tls-exporter'/>") {
		t.Fatalf("features over wss: %s", features)
	}
	srv.DialWS(servertest.WSOptions{TLS: srv.ClientTLS}).Login("alice", "pw", "secure")
}
