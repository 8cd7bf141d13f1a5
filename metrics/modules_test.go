package metrics_test

import (
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/adhocd/adhocd/metrics"
	"github.com/adhocd/adhocd/servertest"
)

// The counters of the IM modules (issue 17's "metrics per module"), read
// from the server's own registry while clients over TCP do what each
// counts: every step says which series must move by how much, and no
// series of those modules moves otherwise.

// imFamilies are the prefixes of the metric families the test watches.
var imFamilies = []string{"adhocd_carbons_", "adhocd_pep_", "adhocd_csi_", "adhocd_avatars_", "adhocd_bookmarks_",
	"adhocd_private_", "adhocd_vcard_", "adhocd_sm_", "adhocd_last_"}

// series is one sample of a family: its name and its labels, as
// name{k=v,…} with sorted labels.
type series = string

// imSamples gathers the registry and returns every sample of the watched
// families, and the families themselves (for promlint).
func imSamples(t *testing.T, tel *metrics.Telemetry) (map[series]float64, []*dto.MetricFamily) {
	t.Helper()
	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[series]float64{}
	var ours []*dto.MetricFamily
	for _, mf := range families {
		watched := false
		for _, p := range imFamilies {
			watched = watched || strings.HasPrefix(mf.GetName(), p)
		}
		if !watched {
			continue
		}
		ours = append(ours, mf)
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out, ours
}

// imStep runs do and waits until the watched series moved by exactly
// want (series → delta) and nothing else of theirs moved: some counters
// move after the answer the client waits for (a conversion, a caps
// query's outcome), so the check is retried until servertest.Wait.
func imStep(t *testing.T, tel *metrics.Telemetry, what string, do func(), want map[series]float64) {
	t.Helper()
	before, _ := imSamples(t, tel)
	do()
	deadline := time.Now().Add(servertest.Wait)
	for {
		after, _ := imSamples(t, tel)
		var diffs []string
		keys := map[series]bool{}
		for k := range after {
			keys[k] = true
		}
		for k := range want {
			keys[k] = true
		}
		for k := range keys {
			if d := after[k] - before[k]; d != want[k] {
				diffs = append(diffs, fmt.Sprintf("%s moved by %v, want %v", k, d, want[k]))
			}
		}
		if len(diffs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(diffs)
			t.Fatalf("%s:\n  %s", what, strings.Join(diffs, "\n  "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// imClient is a raw client that sends IQs and waits for their answers.
type imClient struct {
	*servertest.Raw
	t   *testing.T
	jid string
	n   int
}

func imLogin(t *testing.T, srv *servertest.Server, user, resource string) *imClient {
	t.Helper()
	return &imClient{Raw: srv.RawLogin(user, "pw", resource), t: t, jid: user + "@localhost/" + resource}
}

// iq sends an IQ and returns what was read up to its answer, failing the
// test unless it is a result.
func (c *imClient) iq(typ, to, payload string) string {
	c.t.Helper()
	c.n++
	id := fmt.Sprintf("im%d", c.n)
	attr := ""
	if to != "" {
		attr = ` to='` + to + `'`
	}
	c.Write(`<iq type='` + typ + `' id='` + id + `'` + attr + `>` + payload + `</iq>`)
	got := c.Expect(`<iq[^>]*id=["']` + id + `["'][^>]*(/>|>(?s:.*?)</iq>)`)
	if !regexp.MustCompile(`<iq[^>]*id=["']` + id + `["'][^>]*type=["']result["']|<iq[^>]*type=["']result["'][^>]*id=["']` + id + `["']`).MatchString(got) {
		c.t.Fatalf("%s: %s: want a result, got %s", c.jid, payload, got)
	}
	return got
}

// available sends presence (with extra inside) and waits for the server
// to reflect it.
func (c *imClient) available(extra string) {
	c.t.Helper()
	c.Write(`<presence>` + extra + `</presence>`)
	c.Expect(`<presence[^>]* from=["']` + regexp.QuoteMeta(c.jid) + `["']`)
}

// capsFeatures is what the caps client answers the server's disco#info
// with: XEP-0163 §4.2's +notify for the tune node alone.
var capsFeatures = []string{"http://jabber.org/protocol/disco#info", "http://jabber.org/protocol/tune+notify"}

// capsVer is the XEP-0115 §5.1 hash of the caps client's disco#info.
func capsVer() string {
	f := append([]string(nil), capsFeatures...)
	sort.Strings(f)
	sum := sha1.Sum([]byte("client/pc//im<" + strings.Join(f, "<") + "<"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var (
	discoQueryID   = regexp.MustCompile(`<iq[^>]*id=["']([^"']+)["'][^>]*>\s*<query xmlns=["']http://jabber.org/protocol/disco#info["'][^>]*node=["']([^"']+)["']`)
	tunePublish    = `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='http://jabber.org/protocol/tune'><item><tune xmlns='http://jabber.org/protocol/tune'><artist>%s</artist></tune></item></publish></pubsub>`
	smEnabledID    = regexp.MustCompile(`<enabled xmlns=["']urn:xmpp:sm:3["'] id=["']([0-9a-f]+)["']`)
	smFailedNotFnd = `<failed xmlns=["']urn:xmpp:sm:3["']><item-not-found`
)

// dropConn breaks a raw client's connection under TLS, as a network that
// goes does.
func dropConn(r *servertest.Raw) {
	if tc, ok := r.Conn.(interface{ NetConn() net.Conn }); ok {
		tc.NetConn().Close()
		return
	}
	r.Conn.Close()
}

// TestIMModuleMetrics: the counters of Message Carbons, PEP, CSI,
// avatars, bookmarks, private XML storage, vCards, stream management and
// Last Activity move when a client does what each counts, by as much as
// it did, under the names docs/observability.md lists, and pass promlint.
func TestIMModuleMetrics(t *testing.T) {
	srv, tel := instrumented(t, nil, nil, servertest.NoRateLimits)
	for _, u := range []string{"alice", "bob", "carol"} {
		srv.AddUser(u, "pw")
	}
	srv.Befriend("alice", "bob")
	a1 := imLogin(t, srv, "alice", "A1")
	b1 := imLogin(t, srv, "bob", "B1")
	b1.available("")

	const (
		vcardStored   = "adhocd_vcard_stored_total{}"
		privateStored = "adhocd_private_stored_total{}"
		published     = "adhocd_pep_published_total{}"
		notified      = "adhocd_pep_notifications_total{}"
		hashes        = "adhocd_avatars_presence_hashes_total{}"
	)
	img := []byte("\x89PNG\r\n\x1a\n alice's avatar")
	imStep(t, tel, "a vCard with a photo", func() {
		a1.iq("set", "", `<vCard xmlns='vcard-temp'><FN>Alice</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>`+
			base64.StdEncoding.EncodeToString(img)+`</BINVAL></PHOTO></vCard>`)
	}, map[series]float64{
		vcardStored: 1,
		"adhocd_avatars_converted_total{from=vcard}": 1,
		published: 2, // XEP-0398 §3.2: the data, then the metadata
	})
	imStep(t, tel, "available presence of an account with an avatar", func() { a1.available("") },
		map[series]float64{hashes: 1})

	imStep(t, tel, "a private XML fragment", func() {
		a1.iq("set", "", `<query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'><defaultnick>Alice</defaultnick></exodus></query>`)
	}, map[series]float64{privateStored: 1})
	imStep(t, tel, "XEP-0048 bookmarks in private XML storage", func() {
		a1.iq("set", "", `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>`+
			`<conference jid='council@conference.localhost' name='Council' autojoin='true'><nick>alice</nick></conference></storage></query>`)
	}, map[series]float64{
		privateStored: 1,
		"adhocd_bookmarks_converted_total{from=xep0048}": 1,
		published: 2, // the room to urn:xmpp:bookmarks:1, the list to storage:bookmarks
	})
	imStep(t, tel, "a XEP-0402 bookmark", func() {
		a1.iq("set", "", `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='theplay@conference.localhost'>`+
			`<conference xmlns='urn:xmpp:bookmarks:1' name='The Play' autojoin='true'><nick>alice</nick></conference></item></publish></pubsub>`)
	}, map[series]float64{
		"adhocd_bookmarks_converted_total{from=xep0402}": 1,
		published: 2, // the room, and the XEP-0048 list again
	})

	// PEP: a publish nobody asked to hear of, then a session whose caps
	// ask for the node gets the last item as it comes online, and the
	// next publish.
	imStep(t, tel, "a tune nobody is notified of", func() { a1.iq("set", "", fmt.Sprintf(tunePublish, "one")) },
		map[series]float64{published: 1})
	var a2 *imClient
	imStep(t, tel, "a session asking for tunes comes online", func() {
		a2 = imLogin(t, srv, "alice", "A2")
		a2.Write(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://adhocd.test/im' ver='` + capsVer() + `'/></presence>`)
		m := discoQueryID.FindStringSubmatch(a2.Expect(`disco#info["'][^>]*node=`))
		if m == nil {
			t.Fatal("no caps query")
		}
		var b strings.Builder
		fmt.Fprintf(&b, `<iq type='result' id='%s' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info' node='%s'><identity category='client' type='pc' name='im'/>`, m[1], m[2])
		for _, f := range capsFeatures {
			fmt.Fprintf(&b, `<feature var='%s'/>`, f)
		}
		b.WriteString(`</query></iq>`)
		a2.Write(b.String())
		a2.Expect(`<artist>one</artist>`)
	}, map[series]float64{notified: 1, hashes: 1})
	imStep(t, tel, "a tune A2 hears of", func() {
		a1.iq("set", "", fmt.Sprintf(tunePublish, "two"))
		a2.Expect(`<artist>two</artist>`)
	}, map[series]float64{published: 1, notified: 1})

	// Carbons: A1 and A2 enable them; a message bob sends A1 is copied
	// to A2, and so is one A1 sends bob.
	a1.iq("set", "", `<enable xmlns='urn:xmpp:carbons:2'/>`)
	a2.iq("set", "", `<enable xmlns='urn:xmpp:carbons:2'/>`)
	imStep(t, tel, "a message to A1", func() {
		b1.Write(`<message to='alice@localhost/A1' type='chat' id='c1'><body>to A1</body></message>`)
		a2.Expect(`<received xmlns=["']urn:xmpp:carbons:2["']>`)
	}, map[series]float64{"adhocd_carbons_copies_total{kind=received}": 1})
	imStep(t, tel, "a message from A1", func() {
		a1.Write(`<message to='bob@localhost' type='chat' id='c2'><body>from A1</body></message>`)
		a2.Expect(`<sent xmlns=["']urn:xmpp:carbons:2["']>`)
	}, map[series]float64{"adhocd_carbons_copies_total{kind=sent}": 1})

	// CSI: while A2 is inactive, bob's two presence changes are held, the
	// second replacing the first.
	a2.Write(`<inactive xmlns='urn:xmpp:csi:0'/>`)
	a2.iq("get", "localhost", `<ping xmlns='urn:xmpp:ping'/>`)
	imStep(t, tel, "two presences of bob for an inactive A2", func() {
		b1.Write(`<presence><show>away</show></presence>`)
		b1.Write(`<presence><show>xa</show></presence>`)
		b1.iq("get", "localhost", `<ping xmlns='urn:xmpp:ping'/>`)
	}, map[series]float64{"adhocd_csi_held_total{}": 2, "adhocd_csi_collapsed_total{}": 1})
	a2.Write(`<active xmlns='urn:xmpp:csi:0'/>`)
	a2.Expect(`<show>xa</show>`)

	// Last Activity of the server, of one's own account, of a contact.
	imStep(t, tel, "last activity queries", func() {
		a1.iq("get", "localhost", `<query xmlns='jabber:iq:last'/>`)
		a1.iq("get", "", `<query xmlns='jabber:iq:last'/>`)
		b1.iq("get", "alice@localhost", `<query xmlns='jabber:iq:last'/>`)
	}, map[series]float64{
		"adhocd_last_queries_total{target=server}":  1,
		"adhocd_last_queries_total{target=self}":    1,
		"adhocd_last_queries_total{target=contact}": 1,
	})

	// Stream management: carol enables it with resumption, her
	// connection breaks, a new stream resumes the session; the
	// resumptions that fail count by reason.
	var id string
	imStep(t, tel, "stream management enabled", func() {
		c := imLogin(t, srv, "carol", "phone")
		c.Write(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`)
		m := smEnabledID.FindStringSubmatch(c.Expect(`<enabled[^>]*/>`))
		if m == nil {
			t.Fatal("no resumption id")
		}
		id = m[1]
		c.Write(`<r xmlns='urn:xmpp:sm:3'/>`)
		c.Expect(`<a xmlns=["']urn:xmpp:sm:3["']`)
		dropConn(c.Raw)
	}, map[series]float64{"adhocd_sm_enabled_total{}": 1})
	imStep(t, tel, "a session resumed", func() {
		back := srv.RawDial()
		back.Authenticate(srv.ClientTLS, "carol", "pw")
		back.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
		back.Expect(`<resumed xmlns=["']urn:xmpp:sm:3["']`)
		back.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
		back.Expect(`<failed xmlns=["']urn:xmpp:sm:3["']><unexpected-request`)
	}, map[series]float64{"adhocd_sm_resumed_total{}": 1, "adhocd_sm_resume_failed_total{reason=unexpected}": 1})
	imStep(t, tel, "resumptions refused", func() {
		r := srv.RawDial()
		r.Authenticate(srv.ClientTLS, "carol", "pw")
		r.Write(`<resume xmlns='urn:xmpp:sm:3' previd='0123456789abcdef' h='0'/>`)
		r.Expect(smFailedNotFnd)
		r.Write(`<resume xmlns='urn:xmpp:sm:3' h='0'/>`)
		r.Expect(`<failed xmlns=["']urn:xmpp:sm:3["']><bad-request`)
		other := srv.RawDial()
		other.Authenticate(srv.ClientTLS, "bob", "pw")
		other.Write(`<resume xmlns='urn:xmpp:sm:3' previd='` + id + `' h='0'/>`)
		other.Expect(smFailedNotFnd)
	}, map[series]float64{"adhocd_sm_resume_failed_total{reason=unknown}": 2, "adhocd_sm_resume_failed_total{reason=bad-request}": 1})

	_, ours := imSamples(t, tel)
	problems, err := promlint.NewWithMetricFamilies(ours).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	got := map[string]bool{}
	for _, mf := range ours {
		got[mf.GetName()] = true
	}
	for _, name := range []string{"adhocd_carbons_copies_total", "adhocd_pep_published_total", "adhocd_pep_notifications_total",
		"adhocd_csi_held_total", "adhocd_csi_collapsed_total", "adhocd_avatars_converted_total", "adhocd_avatars_presence_hashes_total",
		"adhocd_bookmarks_converted_total", "adhocd_private_stored_total", "adhocd_vcard_stored_total",
		"adhocd_sm_enabled_total", "adhocd_sm_resumed_total", "adhocd_sm_resume_failed_total", "adhocd_last_queries_total"} {
		if !got[name] {
			t.Errorf("%s is not exported", name)
		}
	}
}
