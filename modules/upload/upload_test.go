package upload_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/modules/upload"
	"github.com/adhocd/adhocd/servertest"
)

// stanzaError reads the <error/> of an IQ answer: its type, its defined
// condition, its text and its child in XEP-0363's namespace, if any.
func stanzaError(t *testing.T, a servertest.Answer) (typ, cond, text string, app *servertest.Node) {
	t.Helper()
	if a.Type != "error" {
		t.Fatalf("want an error, got %s", a.XML)
	}
	for _, el := range servertest.ParseXML(t, a.XML) {
		for _, k := range el.Kids {
			if k.Name.Local != "error" {
				continue
			}
			typ = k.Attr["type"]
			for _, c := range k.Kids {
				switch {
				case c.Name.Space == nsStanzas && c.Name.Local == "text":
					text = c.Text
				case c.Name.Space == nsStanzas:
					cond = c.Name.Local
				case c.Name.Space == nsUpload:
					app = c
				}
			}
		}
	}
	return typ, cond, text, app
}

// tokenOf is the token in a slot's URL.
func tokenOf(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := strings.Cut(strings.TrimPrefix(p.Path, "/"), "/")
	return tok
}

// TestDisco: the server's disco#items lists the service, whose disco#info
// has the identity, the feature and max-file-size (XEP-0363 §2).
func TestDisco(t *testing.T) {
	e := newEnv(t, upload.Options{MaxFileBytes: 5000})
	c := e.login("alice")
	a := c.IQ("get", "localhost", `<query xmlns='http://jabber.org/protocol/disco#items'/>`)
	var listed bool
	for _, it := range a.Payload.Kids {
		listed = listed || (it.Attr["jid"] == service && it.Attr["name"] == "HTTP File Upload")
	}
	if !listed {
		t.Fatalf("the server's items do not list %s: %s", service, a.XML)
	}
	a = c.IQ("get", service, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
	want := servertest.CanonOf(t, `<query xmlns='http://jabber.org/protocol/disco#info'>
		<identity category='store' type='file' name='HTTP File Upload'/>
		<feature var='http://jabber.org/protocol/disco#info'/>
		<feature var='urn:xmpp:ping'/>
		<feature var='urn:xmpp:http:upload:0'/>
		<x xmlns='jabber:x:data' type='result'>
			<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:http:upload:0</value></field>
			<field var='max-file-size'><value>5000</value></field>
		</x></query>`)
	if a.From != service || a.PayloadCanon() != want {
		t.Fatalf("disco#info of the service from %s:\n%s\nwant\n%s", a.From, a.PayloadCanon(), want)
	}
	if a := c.IQ("get", service, `<ping xmlns='urn:xmpp:ping'/>`); a.Type != "result" {
		t.Fatalf("ping: %s", a.XML)
	}
	if a := c.IQ("get", service, `<query xmlns='jabber:iq:version'/>`); a.Err != "cancel service-unavailable" {
		t.Fatalf("version of the service: %s", a.XML)
	}
}

// TestUploadAndDownload: a slot's URL holds a random token and the file
// name; the PUT of the file stores it, and GET and HEAD serve it with its
// type, name, length and caching headers, ranges and conditional
// requests.
func TestUploadAndDownload(t *testing.T) {
	e := newEnv(t, upload.Options{ExpireAfter: 7 * 24 * time.Hour})
	c := e.login("alice")
	const name = `Juliet's "photo" ü.jpg`
	body := bytes.Repeat([]byte("\xff\xd8 not quite a JPEG "), 100)
	put, get := slot(t, c, name, len(body), "image/jpeg")
	if put != get {
		t.Fatalf("PUT %s and GET %s differ", put, get)
	}
	_, port, _ := net.SplitHostPort(e.mod.Addr().String())
	base := "http://" + service + ":" + port + "/"
	if !strings.HasPrefix(put, base) {
		t.Fatalf("URL %s is not under %s", put, base)
	}
	tok := tokenOf(t, put)
	p, _ := url.Parse(put)
	if len(tok) != 32 || strings.Trim(tok, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" || path.Base(p.Path) != name {
		t.Fatalf("URL %s: want a 32-character base64url token and the file name", put)
	}
	if other, _ := slot(t, c, name, len(body), "image/jpeg"); tokenOf(t, other) == tok {
		t.Fatal("two slots got the same token")
	}

	if resp, _ := e.do(http.MethodGet, get, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET before the upload: %s", resp.Status)
	}
	uploaded := e.clock.Now()
	e.put(put, body, "image/jpeg")
	e.clock.Advance(time.Hour)

	resp, got := e.do(http.MethodGet, get, nil, "Origin", "https://web.example")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(got))
	}
	h := resp.Header
	for k, v := range map[string]string{
		"Content-Type":                "image/jpeg",
		"Content-Length":              strconv.Itoa(len(body)),
		"Content-Disposition":         `inline; filename="Juliet's _photo_ _.jpg"; filename*=UTF-8''Juliet%27s%20%22photo%22%20%C3%BC.jpg`,
		"X-Content-Type-Options":      "nosniff",
		"Content-Security-Policy":     "default-src 'none'; frame-ancestors 'none'; sandbox",
		"Access-Control-Allow-Origin": "*",
		"Last-Modified":               uploaded.Format(http.TimeFormat),
		"ETag":                        `"` + tok + `"`,
		"Cache-Control":               "public, max-age=601200, immutable",
		"Accept-Ranges":               "bytes",
	} {
		if h.Get(k) != v {
			t.Errorf("%s: %q, want %q", k, h.Get(k), v)
		}
	}
	// What a browser makes of Content-Disposition: the exact name.
	if kind, params, err := mime.ParseMediaType(h.Get("Content-Disposition")); err != nil || kind != "inline" || params["filename"] != name {
		t.Errorf("Content-Disposition decodes to %q %q (%v)", kind, params, err)
	}

	resp, got = e.do(http.MethodHead, get, nil)
	if resp.StatusCode != http.StatusOK || len(got) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("HEAD: %s, %d bytes of body, headers %v", resp.Status, len(got), resp.Header)
	}
	if resp, _ := e.do(http.MethodGet, get, nil, "If-None-Match", `"`+tok+`"`); resp.StatusCode != http.StatusNotModified {
		t.Fatalf("GET If-None-Match: %s", resp.Status)
	}
	if resp, got := e.do(http.MethodGet, get, nil, "Range", "bytes=2-5"); resp.StatusCode != http.StatusPartialContent || !bytes.Equal(got, body[2:6]) {
		t.Fatalf("GET Range: %s %q", resp.Status, got)
	}
	// The token names the file; the name after it is for people.
	if resp, got := e.do(http.MethodGet, base+tok, nil); resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET without the name: %s", resp.Status)
	}
}

// TestPutRefusals: every PUT that does not match its slot is refused, and
// leaves the slot usable; the stored file is never replaced; unknown
// paths are 404 and nothing is listed.
func TestPutRefusals(t *testing.T) {
	e := newEnv(t, upload.Options{SlotLifetime: time.Minute})
	c := e.login("alice")
	body := []byte("0123456789")
	put, _ := slot(t, c, "a.png", len(body), "image/png")
	tok := tokenOf(t, put)

	for _, tc := range []struct {
		what   string
		body   io.Reader
		header []string
		want   int
	}{
		{"shorter", bytes.NewReader(body[1:]), []string{"Content-Type", "image/png"}, http.StatusBadRequest},
		{"longer", bytes.NewReader(append(body, 'x')), []string{"Content-Type", "image/png"}, http.StatusRequestEntityTooLarge},
		{"another type", bytes.NewReader(body), []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		// A reader of unknown length: the client sends it chunked.
		{"no length", io.MultiReader(bytes.NewReader(body)), []string{"Content-Type", "image/png"}, http.StatusLengthRequired},
	} {
		req, _ := http.NewRequest(http.MethodPut, put, tc.body)
		for i := 0; i+1 < len(tc.header); i += 2 {
			req.Header.Set(tc.header[i], tc.header[i+1])
		}
		resp, err := e.http.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("PUT %s: %s, want %d", tc.what, resp.Status, tc.want)
		}
	}
	if resp, _ := e.do(http.MethodGet, put, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after refused PUTs: %s", resp.Status)
	}
	// The content type's parameters do not matter.
	e.put(put, body, "image/png; q=1")
	if resp, msg := e.do(http.MethodPut, put, []byte("9876543210"), "Content-Type", "image/png"); resp.StatusCode != http.StatusConflict {
		t.Fatalf("second PUT: %s %s", resp.Status, msg)
	}
	if _, got := e.do(http.MethodGet, put, nil); !bytes.Equal(got, body) {
		t.Fatalf("after a second PUT the file holds %q", got)
	}

	other := strings.Replace(put, tok, strings.Repeat("A", len(tok)), 1)
	if resp, _ := e.do(http.MethodPut, other, body); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT to an unknown slot: %s", resp.Status)
	}
	if resp, _ := e.do(http.MethodGet, other, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of an unknown file: %s", resp.Status)
	}
	base := strings.TrimSuffix(put, tok+"/a.png")
	for _, p := range []string{"", tok[:20], "..%2f" + tok, tok + ".json", tok + ".part"} {
		if resp, got := e.do(http.MethodGet, base+p, nil); resp.StatusCode != http.StatusNotFound || bytes.Contains(got, []byte(tok)) {
			t.Errorf("GET %q: %s %q", base+p, resp.Status, got)
		}
	}
	if resp, _ := e.do(http.MethodDelete, put, nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Fatalf("DELETE: %s, Allow %q", resp.Status, resp.Header.Get("Allow"))
	}

	late, _ := slot(t, c, "late.png", len(body), "image/png")
	e.clock.Advance(time.Minute)
	if resp, msg := e.do(http.MethodPut, late, body, "Content-Type", "image/png"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PUT after the slot's lifetime: %s %s", resp.Status, msg)
	}
}

// TestSlotRefusals: requests the service refuses, with the errors of
// XEP-0363 §5.
func TestSlotRefusals(t *testing.T) {
	e := newEnv(t, upload.Options{MaxFileBytes: 5000})
	c := e.login("alice")

	a := c.IQ("get", service, requestXML("big.bin", "5001", ""))
	typ, cond, text, app := stanzaError(t, a)
	if typ != "modify" || cond != "not-acceptable" || text != "File too large. The maximum file size is 5000 bytes" ||
		app == nil || app.Canon() != servertest.CanonOf(t, `<file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>5000</max-file-size></file-too-large>`) {
		t.Fatalf("file too large: %s", a.XML)
	}
	if a := c.IQ("get", service, requestXML("max.bin", "5000", "")); a.Type != "result" {
		t.Fatalf("a file of the maximum size: %s", a.XML)
	}

	for _, tc := range []struct{ what, payload string }{
		{"no file name", requestXML("", "10", "")},
		{"a slash", requestXML("a/b.txt", "10", "")},
		{"a backslash", requestXML(`a\b.txt`, "10", "")},
		{"dot dot", requestXML("..", "10", "")},
		{"a control character", requestXML("a\tb.txt", "10", "")},
		{"a long name", requestXML(strings.Repeat("n", 252)+".txt", "10", "")},
		{"no size", requestXML("a.txt", "", "")},
		{"a negative size", requestXML("a.txt", "-1", "")},
		{"a size that is no number", requestXML("a.txt", "ten", "")},
		{"a content type that is none", requestXML("a.txt", "10", "text")},
	} {
		a := c.IQ("get", service, tc.payload)
		if typ, cond, text, _ := stanzaError(t, a); typ != "modify" || cond != "bad-request" || text == "" {
			t.Errorf("%s: %s", tc.what, a.XML)
		}
	}
	for _, tc := range []struct{ what, typ, to string }{
		{"a set", "set", service},
		{"to a JID at the service", "get", "someone@" + service},
	} {
		if a := c.IQ(tc.typ, tc.to, requestXML("a.txt", "10", "")); a.Err != "cancel service-unavailable" {
			t.Errorf("%s: %s", tc.what, a.XML)
		}
	}
	if got := e.files(); len(got) != 1 {
		t.Fatalf("the refusals left files: %q", got)
	}
}

// TestQuotas: an account's quota, the service's total and the bound on
// open slots each refuse a slot with resource-constraint and a text, with a
// retry stamp when an expiry will free space; slots past their lifetime
// and expired files stop counting at once.
func TestQuotas(t *testing.T) {
	e := newEnv(t, upload.Options{MaxFileBytes: 100, QuotaPerUserBytes: 250, QuotaTotalBytes: 400,
		ExpireAfter: time.Hour, SlotLifetime: time.Minute, MaxPendingSlots: 2,
		// The sweeper would free the space the test counts on.
		SweepInterval: time.Hour})
	alice, bob, carol := e.login("alice"), e.login("bob"), e.login("carol")
	first := e.clock.Now()
	for range 2 {
		put, _ := slot(t, alice, "a.bin", 100, "")
		e.put(put, make([]byte, 100), "")
		e.clock.Advance(time.Second)
	}
	a := alice.IQ("get", service, requestXML("a.bin", "100", ""))
	typ, cond, text, app := stanzaError(t, a)
	if typ != "wait" || cond != "resource-constraint" || !strings.Contains(text, "Quota reached. You store 200 of your 250 bytes") ||
		app == nil || app.Name.Local != "retry" || app.Attr["stamp"] != first.Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("past alice's quota: %s", a.XML)
	}
	if a := alice.IQ("get", service, requestXML("a.bin", "50", "")); a.Type != "result" {
		t.Fatalf("within alice's quota: %s", a.XML)
	}

	// 250 held by alice; bob takes 100 and then the last 50.
	put, _ := slot(t, bob, "b.bin", 100, "")
	e.put(put, make([]byte, 100), "")
	slot(t, bob, "b.bin", 50, "")
	a = carol.IQ("get", service, requestXML("c.bin", "1", ""))
	if typ, cond, text, _ := stanzaError(t, a); typ != "wait" || cond != "resource-constraint" || !strings.Contains(text, "The service stores all it may") {
		t.Fatalf("past the total quota: %s", a.XML)
	}

	// Past the lifetime of alice's and bob's open slots, 300 are held:
	// room for carol's two, the most she may hold open.
	e.clock.Advance(time.Minute)
	slot(t, carol, "c.bin", 50, "")
	slot(t, carol, "c.bin", 50, "")
	a = carol.IQ("get", service, requestXML("c.bin", "0", ""))
	if typ, cond, text, _ := stanzaError(t, a); typ != "wait" || cond != "resource-constraint" || !strings.Contains(text, "2 slots not uploaded to yet") {
		t.Fatalf("past the bound on open slots: %s", a.XML)
	}
	// Alice's files expire: her quota and the total have room again.
	e.clock.Advance(time.Hour)
	if a := alice.IQ("get", service, requestXML("a.bin", "100", "")); a.Type != "result" {
		t.Fatalf("after alice's files expired: %s", a.XML)
	}
}

// TestExpiry: a file is served until ExpireAfter has passed since its
// upload, then not, and the sweeper removes it; a slot nobody uploaded to
// goes after its lifetime.
func TestExpiry(t *testing.T) {
	e := newEnv(t, upload.Options{ExpireAfter: time.Hour, SlotLifetime: time.Minute})
	c := e.login("alice")
	put, get := slot(t, c, "old.txt", 3, "text/plain")
	e.put(put, []byte("old"), "text/plain")
	abandoned, _ := slot(t, c, "never.txt", 3, "text/plain")
	tok, abandonedTok := tokenOf(t, get), tokenOf(t, abandoned)
	has := func(prefix string) bool {
		return slices.ContainsFunc(e.files(), func(n string) bool { return strings.HasPrefix(n, prefix) })
	}
	if !has(tok) || !has(abandonedTok) {
		t.Fatalf("folder: %q", e.files())
	}

	e.clock.Advance(time.Minute)
	eventually(t, "the abandoned slot is removed", func() bool { return !has(abandonedTok) })
	kept, _ := slot(t, c, "kept.txt", 3, "text/plain")
	e.put(kept, []byte("new"), "text/plain")
	e.clock.Advance(58 * time.Minute)
	if resp, got := e.do(http.MethodGet, get, nil); resp.StatusCode != http.StatusOK || string(got) != "old" {
		t.Fatalf("GET before the expiry: %s", resp.Status)
	}
	if !has(tok) {
		t.Fatal("the file was removed before its expiry")
	}
	e.clock.Advance(time.Minute)
	if resp, _ := e.do(http.MethodGet, get, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET after the expiry: %s", resp.Status)
	}
	eventually(t, "the expired file is removed", func() bool { return !has(tok) })
	if resp, got := e.do(http.MethodGet, kept, nil); resp.StatusCode != http.StatusOK || string(got) != "new" {
		t.Fatalf("the file uploaded later: %s", resp.Status)
	}
}

// TestAccountDeleted: deleting an account removes its files, and only
// its own.
func TestAccountDeleted(t *testing.T) {
	e := newEnv(t, upload.Options{})
	alice, bob := e.login("alice"), e.login("bob")
	aliceURL, _ := slot(t, alice, "a.txt", 1, "")
	e.put(aliceURL, []byte("a"), "")
	bobURL, _ := slot(t, bob, "b.txt", 1, "")
	e.put(bobURL, []byte("b"), "")
	if err := e.srv.Accounts().Delete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	tok := tokenOf(t, aliceURL)
	eventually(t, "alice's file is removed", func() bool {
		return !slices.ContainsFunc(e.files(), func(n string) bool { return strings.HasPrefix(n, tok) })
	})
	if resp, _ := e.do(http.MethodGet, aliceURL, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("alice's file after her account was deleted: %s", resp.Status)
	}
	if resp, got := e.do(http.MethodGet, bobURL, nil); resp.StatusCode != http.StatusOK || string(got) != "b" {
		t.Fatalf("bob's file: %s", resp.Status)
	}
}

// TestServedTypes: what a browser could run is served as bytes, only
// images, audio and video are inline, and every file has the CSP.
func TestServedTypes(t *testing.T) {
	e := newEnv(t, upload.Options{})
	c := e.login("alice")
	for _, tc := range []struct{ declared, put, served, kind string }{
		{"text/html", "text/html", "application/octet-stream", "attachment"},
		{"text/html; charset=utf-8", "text/html", "application/octet-stream", "attachment"},
		{"application/xhtml+xml", "", "application/octet-stream", "attachment"},
		{"application/javascript", "", "application/octet-stream", "attachment"},
		{"text/xml", "", "application/octet-stream", "attachment"},
		{"image/svg+xml", "", "image/svg+xml", "attachment"},
		{"image/png", "", "image/png", "inline"},
		{"audio/ogg", "", "audio/ogg", "inline"},
		{"video/mp4", "", "video/mp4", "inline"},
		{"text/plain; charset=utf-8", "", "text/plain; charset=utf-8", "attachment"},
		{"application/pdf", "", "application/pdf", "attachment"},
		// No type declared: the PUT's, else bytes.
		{"", "", "application/octet-stream", "attachment"},
		{"", "image/gif", "image/gif", "inline"},
		{"", "text/html", "application/octet-stream", "attachment"},
	} {
		body := []byte("<html><script>alert(1)</script></html>")
		put, _ := slot(t, c, "f", len(body), tc.declared)
		e.put(put, body, tc.put)
		resp, _ := e.do(http.MethodGet, put, nil)
		kind, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
		if resp.Header.Get("Content-Type") != tc.served || kind != tc.kind ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("declared %q, PUT %q: served %q %q, CSP %q", tc.declared, tc.put, resp.Header.Get("Content-Type"), kind, resp.Header.Get("Content-Security-Policy"))
		}
	}
}

// TestCORS: a browser's preflight of the PUT passes, and the PUT and GET
// answers let the page read them.
func TestCORS(t *testing.T) {
	e := newEnv(t, upload.Options{})
	c := e.login("alice")
	put, _ := slot(t, c, "cat.png", 4, "image/png")
	resp, _ := e.do(http.MethodOptions, put, nil, "Origin", "https://converse.example",
		"Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "content-type")
	h := resp.Header
	if resp.StatusCode/100 != 2 || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") || !strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") ||
		!strings.EqualFold(h.Get("Access-Control-Allow-Headers"), "content-type") {
		t.Fatalf("preflight: %s %v", resp.Status, h)
	}
	resp, _ = e.do(http.MethodPut, put, []byte("meow"), "Origin", "https://converse.example", "Content-Type", "image/png")
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("PUT from a page: %s %v", resp.Status, resp.Header)
	}
}

// TestTLS: with TLS the listener serves HTTPS with the server's
// certificate, and the slots' URLs are https.
func TestTLS(t *testing.T) {
	e := newEnv(t, upload.Options{TLS: true})
	c := e.login("alice")
	put, _ := slot(t, c, "s.txt", 6, "text/plain")
	if !strings.HasPrefix(put, "https://"+service+":") {
		t.Fatalf("slot URL %s is not https", put)
	}
	// The self-signed certificate is the server domain's.
	tlsCfg := e.srv.ClientTLS.Clone()
	tlsCfg.ServerName = "localhost"
	hc := clientTo(e.mod.Addr().String(), tlsCfg)
	resp, msg := doWith(t, hc, http.MethodPut, put, []byte("secret"), "Content-Type", "text/plain")
	if resp.StatusCode != http.StatusCreated || resp.TLS == nil {
		t.Fatalf("PUT over TLS: %s %s", resp.Status, msg)
	}
	if _, got := doWith(t, hc, http.MethodGet, put, nil); string(got) != "secret" {
		t.Fatalf("GET over TLS: %q", got)
	}
}

// TestPublicURL: slots are under the public URL, and the listener serves
// under its path (what a proxy routes to it), nothing outside it.
func TestPublicURL(t *testing.T) {
	e := newEnv(t, upload.Options{PublicURL: "https://files.example.org/xmpp/upload"})
	c := e.login("alice")
	put, _ := slot(t, c, "p.txt", 1, "")
	if !strings.HasPrefix(put, "https://files.example.org/xmpp/upload/") {
		t.Fatalf("slot URL %s", put)
	}
	// As the proxy would forward it: plain HTTP to the listener.
	u, _ := url.Parse(put)
	local := "http://" + e.mod.Addr().String() + u.EscapedPath()
	e.put(local, []byte("p"), "")
	tok := strings.Split(u.Path, "/")[3]
	if resp, _ := e.do(http.MethodGet, "http://"+e.mod.Addr().String()+"/"+tok, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET outside the public URL's path: %s", resp.Status)
	}
	if resp, got := e.do(http.MethodGet, local, nil); resp.StatusCode != http.StatusOK || string(got) != "p" {
		t.Fatalf("GET: %s %q", resp.Status, got)
	}
}

// TestFromConfig: the default module table runs the service from the
// http_upload section (off unless enabled), its folder beside the store,
// the public URL from the listener's port; its files and quotas outlive a
// restart.
func TestFromConfig(t *testing.T) {
	off := servertest.Start(t)
	off.AddUser("alice", "pw")
	c := servertest.IQLogin(t, off, "alice", "pw")
	if a := c.IQ("get", "localhost", `<query xmlns='http://jabber.org/protocol/disco#items'/>`); strings.Contains(a.XML, service) {
		t.Fatalf("the service is listed while off: %s", a.XML)
	}
	if a := c.IQ("get", service, requestXML("a.txt", "1", "")); a.Type != "error" {
		t.Fatalf("a slot while off: %s", a.XML)
	}

	srv := servertest.Start(t, enabled, func(c *config.Config) {
		c.HTTPUpload.MaxFileBytes = 600
		c.HTTPUpload.QuotaPerUserBytes = 1000
	})
	srv.AddUser("alice", "pw")
	c = servertest.IQLogin(t, srv, "alice", "pw")
	put, get := slot(t, c, "a.txt", 600, "text/plain")
	u, _ := url.Parse(put)
	if u.Scheme != "http" || u.Hostname() != service || u.Port() == "" {
		t.Fatalf("slot URL %s: want http://%s:PORT/", put, service)
	}
	hc := clientTo("127.0.0.1:"+u.Port(), nil)
	body := bytes.Repeat([]byte("a"), 600)
	if resp, msg := doWith(t, hc, http.MethodPut, put, body, "Content-Type", "text/plain"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %s %s", resp.Status, msg)
	}
	dir := config.HTTPUpload{}.Dir(srv.Dir)
	tok := tokenOf(t, put)
	if got, err := os.ReadFile(filepath.Join(dir, tok)); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("the file in %s: %v", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, tok+".json")); err != nil {
		t.Fatalf("its metadata: %v", err)
	}

	srv = srv.Restart()
	c = servertest.IQLogin(t, srv, "alice", "pw")
	a := c.IQ("get", service, requestXML("b.txt", "600", ""))
	if _, cond, _, _ := stanzaError(t, a); cond != "resource-constraint" {
		t.Fatalf("after a restart the quota forgot the file: %s", a.XML)
	}
	put2, _ := slot(t, c, "b.txt", 400, "")
	u2, _ := url.Parse(put2)
	hc = clientTo("127.0.0.1:"+u2.Port(), nil)
	if resp, got := doWith(t, hc, http.MethodGet, strings.Replace(get, u.Host, u2.Host, 1), nil); resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Fatalf("GET after a restart: %s", resp.Status)
	}
}

// TestConfigDefaults: the section's defaults are what the package
// documents, and a bad section is refused with its keys named.
func TestConfigDefaults(t *testing.T) {
	d := config.Default().HTTPUpload
	if d.Enabled || d.Listen != "127.0.0.1:5281" || d.MaxFileBytes != 100<<20 || d.ExpireAfter.D() != 7*24*time.Hour ||
		d.SlotLifetime.D() != 5*time.Minute || d.Dir("/var/lib/adhocd") != "/var/lib/adhocd/upload" {
		t.Fatalf("defaults: %+v", d)
	}
	_, err := config.Parse([]byte(`
websocket: {listen: ":5281"}
http_upload:
  enabled: true
  domain: localhost
  public_url: ftp://example.org/
  max_file_bytes: 1000
  quota_per_user_bytes: 10
  slot_lifetime: 0s
`))
	if err == nil {
		t.Fatal("a bad http_upload section was accepted")
	}
	for _, key := range []string{"http_upload.domain", "http_upload.listen", "websocket.listen", "http_upload.public_url", "http_upload.quota_per_user_bytes", "http_upload.slot_lifetime"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("the error does not name %s: %v", key, err)
		}
	}
	cfg, err := config.Parse([]byte("http_upload: {enabled: true, path: files, quota_total_bytes: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTPUpload.Dir("/data") != "/data/files" || cfg.HTTPUpload.ServiceDomain("example.org") != "upload.example.org" {
		t.Fatalf("path or domain: %+v", cfg.HTTPUpload)
	}
}
