package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/adhoc/adhoctest"
	"github.com/adhocd/adhocd/cluster/redistest"
	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage/postgres/pgtest"
)

// TestMain shares one PostgreSQL server among the tests that need one
// (TestChatAcrossReplicas, and every test server when
// ADHOCD_TEST_BACKEND=postgres), each on a database of its own.
func TestMain(m *testing.M) { pgtest.Main(m) }

func start(t *testing.T) *servertest.Server {
	t.Helper()
	srv := servertest.StartWith(t, []server.Option{server.WithCommands(adhoctest.Wizard())}, func(c *config.Config) {
		c.C2S.RequireTLS = false
		c.C2S.AllowPlainWithoutTLS = true
		for i := 0; i < 4; i++ {
			c.Admins = append(c.Admins, fmt.Sprintf("bench%d@localhost", i))
		}
	})
	for i := 0; i < 4; i++ {
		srv.AddUser(fmt.Sprintf("bench%d", i), "pw")
	}
	return srv
}

func bench(t *testing.T, srv *servertest.Server, args ...string) report {
	t.Helper()
	var out, errb strings.Builder
	full := append([]string{"--server", srv.Addr, "--password", "pw", "--json"}, args...)
	if err := run(full, &out, &errb); err != nil {
		t.Fatalf("adhocbench: %v\n%s", err, errb.String())
	}
	var r report
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatalf("report %q: %v", out.String(), err)
	}
	return r
}

func TestOneStageCount(t *testing.T) {
	srv := start(t)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256"} {
		r := bench(t, srv, "--clients", "4", "--count", "50", "--mech", mech)
		if r.Requests != 200 || r.Flows != 200 || len(r.Errors) != 0 || r.LoginErrors != 0 {
			t.Fatalf("%s: %+v", mech, r)
		}
		if r.Latency["p99"].(float64) <= 0 || r.ReqPerSec <= 0 {
			t.Fatalf("%s: no latency or rate: %+v", mech, r)
		}
	}
}

func TestTLSAndFlow(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--clients", "2", "--count", "10", "--tls", "--node", adhoctest.WizardNode,
		"--flow", "next:name=Ann,color=red;next:contact=a@localhost;complete:comment=ok")
	if r.Flows != 20 || r.Requests != 80 || r.Stages != 4 || len(r.Errors) != 0 {
		t.Fatalf("flow: %+v", r)
	}
}

// TestUnfinishedFlowIsNotCounted: a multi-stage node run without its flow
// answers "executing"; that is a request, not a completed flow.
func TestUnfinishedFlowIsNotCounted(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--clients", "1", "--count", "3", "--node", adhoctest.WizardNode)
	if r.Requests != 3 || r.Flows != 0 || len(r.Errors) != 0 {
		t.Fatalf("%+v", r)
	}
}

func TestErrorsCountedByCondition(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--clients", "1", "--count", "5", "--node", "urn:nothing")
	if r.Errors["item-not-found"] != 5 || r.Flows != 0 {
		t.Fatalf("errors: %+v", r)
	}
}

func TestIdle(t *testing.T) {
	srv := start(t)
	var out, errb strings.Builder
	if err := run([]string{"--server", srv.Addr, "--password", "pw", "--idle", "4", "--duration", "300ms", "--json"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"idle_connections":4`) {
		t.Fatalf("idle: %q", out.String())
	}
}

// TestLogins: the login mode counts bound logins and failed ones by their
// SASL condition.
func TestLogins(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--logins", "--clients", "2", "--count", "5", "--mech", "SCRAM-SHA-1")
	if r.Requests != 10 || r.Flows != 10 || len(r.Errors) != 0 || r.Node != "login SCRAM-SHA-1" {
		t.Fatalf("logins: %+v", r)
	}
	bad := bench(t, srv, "--logins", "--clients", "1", "--count", "2", "--password", "wrong")
	if bad.Flows != 0 || bad.Errors["not-authorized"] != 2 {
		t.Fatalf("wrong password: %+v", bad)
	}
	// Each login closed its stream: the server lets go of every session.
	for deadline := time.Now().Add(5 * time.Second); len(srv.Sessions()) != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left bound after the logins", len(srv.Sessions()))
		}
	}
}

// TestChat: four clients, two pairs, each client sending 50 messages to its
// partner, which answers each: every message sent is delivered, each
// original is answered, and the latencies are measured, ordered and within
// the run.
func TestChat(t *testing.T) {
	srv := start(t)
	for _, extra := range [][]string{nil, {"--tls", "--mech", "SCRAM-SHA-256"}} {
		r := bench(t, srv, append([]string{"--chat", "--clients", "4", "--count", "50"}, extra...)...)
		const originals = 4 * 50
		if r.Workload != "chat" || r.Pairs != 2 || r.LoginErrors != 0 || len(r.Errors) != 0 {
			t.Fatalf("%v: %+v", extra, r)
		}
		if r.Sent != 2*originals || r.Delivered != r.Sent || r.Flows != originals {
			t.Fatalf("%v: sent %d, delivered %d, answered %d; want %d, %d, %d", extra, r.Sent, r.Delivered, r.Flows, 2*originals, 2*originals, originals)
		}
		checkLatency(t, r)
		if want := float64(r.Delivered) / r.Seconds; r.MsgPerSec < want*0.99 || r.MsgPerSec > want*1.01 {
			t.Fatalf("%v: %.0f messages/s, but %d in %.3f s", extra, r.MsgPerSec, r.Delivered, r.Seconds)
		}
	}
}

// TestChatDuration: bounded by --duration, the pairs stop sending when it
// ends, and every message already sent is still delivered.
func TestChatDuration(t *testing.T) {
	srv := start(t)
	r := bench(t, srv, "--chat", "--clients", "2", "--duration", "500ms")
	if r.Sent == 0 || r.Delivered != r.Sent || r.Flows*2 != r.Sent || len(r.Errors) != 0 {
		t.Fatalf("%+v", r)
	}
	if r.Seconds < 0.5 || r.Seconds > 5 {
		t.Fatalf("ran %.3f s for --duration 500ms", r.Seconds)
	}
	checkLatency(t, r)
}

// TestChatOddClients: a client without a partner is refused.
func TestChatOddClients(t *testing.T) {
	srv := start(t)
	var out, errb strings.Builder
	err := run([]string{"--server", srv.Addr, "--password", "pw", "--chat", "--clients", "3", "--count", "1"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "even") {
		t.Fatalf("3 clients: %v", err)
	}
}

// checkLatency asserts that the report's latencies are measured: above
// zero, in order, and no longer than the run.
func checkLatency(t *testing.T, r report) {
	t.Helper()
	var l [4]float64
	for i, k := range []string{"p50", "p90", "p99", "max"} {
		v, ok := r.Latency[k].(float64)
		if !ok {
			t.Fatalf("no %s latency: %+v", k, r.Latency)
		}
		l[i] = v
	}
	if l[0] <= 0 || l[0] > l[1] || l[1] > l[2] || l[2] > l[3] || l[3] > r.Seconds*1000 {
		t.Fatalf("latencies p50 %v p90 %v p99 %v max %v ms in a %.3f s run", l[0], l[1], l[2], l[3], r.Seconds)
	}
}

// TestChatErrorsCountedByCondition: bounced messages are counted by the
// condition of their error, and a bounced original is over (the next one
// is sent). adhocd bounces nothing in this workload (a full JID that has
// gone falls back to the bare JID and offline storage), so the server here
// is bounceServer, a stand-in on loopback that logs any client in and
// bounces every message but the end markers, the way Prosody and ejabberd
// do for an account that does not exist.
func TestChatErrorsCountedByCondition(t *testing.T) {
	addr := bounceServer(t)
	var out, errb strings.Builder
	if err := run([]string{"--server", addr, "--password", "pw", "--json", "--chat", "--clients", "2", "--count", "7", "--timeout", "5s"}, &out, &errb); err != nil {
		t.Fatalf("adhocbench: %v\n%s", err, errb.String())
	}
	var r report
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatal(err)
	}
	if r.Sent != 14 || r.Delivered != 0 || r.Flows != 0 || r.Errors["service-unavailable"] != 14 || len(r.Errors) != 1 {
		t.Fatalf("%+v\n%s", r, errb.String())
	}
}

// bounceServer listens on loopback, logs in any client with PLAIN (bound
// as <user>@localhost/r), delivers the chat workload's end markers to
// their addressee and answers every other message with a
// service-unavailable bounce, until the test ends.
func bounceServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[string]net.Conn{} // by bound JID
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	write := func(c net.Conn, s string) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = io.WriteString(c, s)
	}
	serve := func(c net.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		dec := xml.NewDecoder(c)
		me := ""
		for {
			tok, err := dec.Token()
			if err != nil {
				return
			}
			st, ok := tok.(xml.StartElement)
			if !ok {
				continue
			}
			attr := func(name string) string {
				for _, a := range st.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			if st.Name.Local == "stream" {
				features := `<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>`
				if me != "" {
					features = `<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>`
				}
				write(c, `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='s' version='1.0'><stream:features>`+features+`</stream:features>`)
				continue
			}
			var n node
			if err := dec.DecodeElement(&n, &st); err != nil {
				return
			}
			switch st.Name.Local {
			case "auth":
				creds, _ := base64.StdEncoding.DecodeString(n.Text)
				parts := strings.Split(string(creds), "\x00")
				me = parts[len(parts)-2] + "@localhost/r"
				mu.Lock()
				conns[me] = c
				mu.Unlock()
				write(c, `<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
			case "iq":
				write(c, `<iq type='result' id='`+attr("id")+`'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>`+me+`</jid></bind></iq>`)
			case "message":
				if attr("id") == "end" {
					mu.Lock()
					to := conns[attr("to")]
					mu.Unlock()
					if to != nil {
						write(to, `<message from='`+me+`' type='chat' id='end'><body>end</body></message>`)
					}
					continue
				}
				write(c, `<message from='`+attr("to")+`' type='error' id='`+attr("id")+`'><body>`+chatBody+`</body>`+
					`<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>`+
					`<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no such user</text></error></message>`)
			}
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); serve(c) }()
		}
	}()
	return ln.Addr().String()
}

// TestNextMessage: the chat workload's stream reader finds each message's
// id and error condition in the forms servers write (prefixes, either
// quote, '>' inside an attribute value, comments, CDATA, self-closing
// elements), skips other stanzas whole, and reports a stream error.
func TestNextMessage(t *testing.T) {
	stream := `<presence from="a@localhost/r" to='a@localhost/r'><status>a > b</status><x xmlns='y'/></presence>` +
		`<message from='b@localhost/r' id="c12.345" type='chat' title='1 > 0'><body><![CDATA[<not a tag>]]></body><!-- </message> --></message>` +
		`<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>` +
		`<message id='e7.89' type="chat"/>` +
		`<message id='c1.2' type='error'><body>hi</body><error type='cancel'><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>` +
		`<message id='end'><body>end</body></message>` +
		`<stream:error><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>bye</text><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`
	c := &client{}
	c.reset(fakeConn{strings.NewReader(stream)})
	want := []chatIn{
		{kind: kindOriginal, seq: 12, sentAt: 345},
		{kind: kindEcho, seq: 7, sentAt: 89},
		{kind: kindOriginal, seq: 1, sentAt: 2, cond: "item-not-found"},
		{kind: kindEnd},
	}
	for i, w := range want {
		var in chatIn
		if err := c.nextMessage(&in); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if in != w {
			t.Fatalf("message %d: %+v, want %+v", i, in, w)
		}
	}
	var in chatIn
	if err := c.nextMessage(&in); err == nil || err.Error() != "stream error: conflict" {
		t.Fatalf("after the stream error: %v", err)
	}
}

// fakeConn is a net.Conn that reads from r.
type fakeConn struct{ r io.Reader }

func (f fakeConn) Read(p []byte) (int, error)     { return f.r.Read(p) }
func (f fakeConn) Write(p []byte) (int, error)    { return len(p), nil }
func (fakeConn) Close() error                     { return nil }
func (fakeConn) LocalAddr() net.Addr              { return nil }
func (fakeConn) RemoteAddr() net.Addr             { return nil }
func (fakeConn) SetDeadline(time.Time) error      { return nil }
func (fakeConn) SetReadDeadline(time.Time) error  { return nil }
func (fakeConn) SetWriteDeadline(time.Time) error { return nil }

// TestServersSpread: with two servers in --server, connection i logs in
// to the (i mod 2)-th, whatever the workload: each server counts the
// logins of its own half of the users, none of the other half's.
func TestServersSpread(t *testing.T) {
	a, b := start(t), start(t)
	var out, errb strings.Builder
	args := []string{"--server", a.Addr + "," + b.Addr, "--password", "pw", "--json", "--logins", "--clients", "4", "--count", "3"}
	if err := run(args, &out, &errb); err != nil {
		t.Fatalf("adhocbench: %v\n%s", err, errb.String())
	}
	var r report
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatal(err)
	}
	if r.Servers != 2 || r.Flows != 12 || len(r.Errors) != 0 {
		t.Fatalf("%+v", r)
	}
	for i := range 4 {
		user := fmt.Sprintf("bench%d", i)
		var got [2]int
		got[0], _ = a.Logins(user)
		got[1], _ = b.Logins(user)
		want := [2]int{3, 0}
		if i%2 == 1 {
			want = [2]int{0, 3}
		}
		if got != want {
			t.Fatalf("%s: %v logins on the first and the second server, want %v", user, got, want)
		}
	}
}

// TestServerList: --server refuses an entry that is not host:port.
func TestServerList(t *testing.T) {
	var out, errb strings.Builder
	err := run([]string{"--server", "127.0.0.1:5222,", "--password", "pw", "--count", "1"}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "not host:port") {
		t.Fatalf("a trailing comma: %v", err)
	}
}

// TestChatAcrossReplicas: two replicas of one domain (on one PostgreSQL
// database and one Redis, as an adhocd cluster), the partners of each pair
// on different replicas: every message crosses between the replicas and is
// delivered, and each replica served its half of the clients.
func TestChatAcrossReplicas(t *testing.T) {
	dsn := pgtest.Start(t)
	rd := redistest.Start(t)
	var rs []*servertest.Server
	for _, name := range []string{"r1", "r2"} {
		cfg := servertest.Config(t.TempDir())
		cfg.C2S.RequireTLS = false
		cfg.C2S.AllowPlainWithoutTLS = true
		cfg.Storage.Backend, cfg.Storage.Postgres.DSN = config.BackendPostgres, dsn
		cfg.Cluster.Redis.Addr = rd.Addr()
		cfg.Cluster.Replica = name
		rs = append(rs, servertest.StartConfig(t, cfg))
	}
	for i := range 4 {
		rs[0].AddUser(fmt.Sprintf("bench%d", i), "pw") // one database: an account of both
	}
	var out, errb strings.Builder
	args := []string{"--server", rs[0].Addr + "," + rs[1].Addr, "--password", "pw", "--json", "--chat", "--clients", "4", "--count", "20"}
	if err := run(args, &out, &errb); err != nil {
		t.Fatalf("adhocbench: %v\n%s", err, errb.String())
	}
	var r report
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		t.Fatal(err)
	}
	const originals = 4 * 20
	if r.Servers != 2 || r.Pairs != 2 || r.LoginErrors != 0 || len(r.Errors) != 0 ||
		r.Sent != 2*originals || r.Delivered != r.Sent || r.Flows != originals {
		t.Fatalf("%+v\n%s", r, errb.String())
	}
	checkLatency(t, r)
	for i := range 4 {
		user := fmt.Sprintf("bench%d", i)
		if n, _ := rs[i%2].Logins(user); n != 1 {
			t.Fatalf("%s logged in %d times on replica %d, want once", user, n, i%2+1)
		}
		if n, _ := rs[1-i%2].Logins(user); n != 0 {
			t.Fatalf("%s logged in %d times on replica %d, want never", user, n, 2-i%2)
		}
	}
}
