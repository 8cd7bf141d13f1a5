package upload_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/upload"
	"github.com/adhocd/adhocd/server"
	"github.com/adhocd/adhocd/servertest"
)

// The tests run a real server with the service over TCP: clients log in
// over STARTTLS, ask the service for slots in XML they write themselves,
// and PUT and GET with net/http against the service's own listener. The
// service's clock is a fake one the tests move forward (slot lifetime,
// expiry); the sweeper runs every few milliseconds of real time, and what
// it removes is waited for by looking at the folder until it changes.

const (
	service   = "upload.localhost"
	nsUpload  = "urn:xmpp:http:upload:0"
	nsStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
)

// clock is the service's clock, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a server running the service, with accounts made on demand.
type env struct {
	t     *testing.T
	srv   *servertest.Server
	mod   *upload.Module
	clock *clock
	dir   string
	http  *http.Client
	users map[string]bool
}

// newEnv starts a server with the service of opts (its listener on a
// loopback port, its folder in a temporary one, the test's clock and a
// quick sweeper unless opts says otherwise); cfg changes the server's
// configuration.
func newEnv(t *testing.T, opts upload.Options, cfg ...servertest.Option) *env {
	t.Helper()
	e := &env{t: t, clock: newClock(), users: map[string]bool{}}
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = 5 * time.Millisecond
	}
	e.dir = opts.Dir
	e.mod = upload.New(opts)
	e.srv = servertest.StartWith(t, []server.Option{server.WithModules(e.mod)}, cfg...)
	e.http = clientTo(e.mod.Addr().String(), nil)
	return e
}

// clientTo is an HTTP client whose every connection goes to addr, whatever
// the URL's host (upload.localhost, which no resolver knows), over TLS
// with tlsCfg when the URL is https.
func clientTo(addr string, tlsCfg *tls.Config) *http.Client {
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: tlsCfg}}
}

// login logs user in, making the account first.
func (e *env) login(user string) *servertest.IQClient {
	e.t.Helper()
	if !e.users[user] {
		e.srv.AddUser(user, "pw-"+user)
		e.users[user] = true
	}
	return servertest.IQLogin(e.t, e.srv, user, "pw-"+user)
}

// requestXML is a slot request; an empty attribute value is left out.
func requestXML(name, size, typ string) string {
	var b strings.Builder
	b.WriteString(`<request xmlns='` + nsUpload + `'`)
	for _, a := range [][2]string{{"filename", name}, {"size", size}, {"content-type", typ}} {
		if a[1] != "" {
			b.WriteString(` ` + a[0] + `='` + xmlEscape(a[1]) + `'`)
		}
	}
	b.WriteString(`/>`)
	return b.String()
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// slot asks for a slot and returns its PUT and GET URLs, failing the test
// on an error.
func slot(t *testing.T, c *servertest.IQClient, name string, size int, typ string) (put, get string) {
	t.Helper()
	a := c.IQ("get", service, requestXML(name, strconv.Itoa(size), typ))
	if a.Type != "result" || a.Payload == nil || a.Payload.Name.Space != nsUpload || a.Payload.Name.Local != "slot" {
		t.Fatalf("slot for %q: %s", name, a.XML)
	}
	for _, k := range a.Payload.Kids {
		switch k.Name.Local {
		case "put":
			put = k.Attr["url"]
		case "get":
			get = k.Attr["url"]
		}
	}
	if put == "" || get == "" {
		t.Fatalf("slot without put or get URL: %s", a.XML)
	}
	return put, get
}

// do sends an HTTP request and returns the response with its body read.
func (e *env) do(method, url string, body []byte, header ...string) (*http.Response, []byte) {
	e.t.Helper()
	return doWith(e.t, e.http, method, url, body, header...)
}

func doWith(t *testing.T, c *http.Client, method, url string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp, b
}

// put uploads body to url with the content type typ (none when empty) and
// fails the test unless it is stored (201).
func (e *env) put(url string, body []byte, typ string) {
	e.t.Helper()
	var h []string
	if typ != "" {
		h = []string{"Content-Type", typ}
	}
	resp, msg := e.do(http.MethodPut, url, body, h...)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("PUT %s: %s %s", url, resp.Status, msg)
	}
}

// files lists the names in the service's folder.
func (e *env) files() []string {
	e.t.Helper()
	des, err := os.ReadDir(e.dir)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// eventually polls cond until it holds, for servertest.Wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(servertest.Wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// enabled turns the http_upload section on with a loopback listener, for
// the module of the default table.
func enabled(c *config.Config) {
	c.HTTPUpload.Enabled = true
	c.HTTPUpload.Listen = "127.0.0.1:0"
}
