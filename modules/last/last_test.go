package last_test

import (
	"context"
	"encoding/xml"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// XEP-0012 over TCP, with raw clients so that each answer is read as the
// server wrote it.

const lastQuery = `<query xmlns='jabber:iq:last'/>`

// seconds returns the seconds of a Last Activity result, failing the test
// for anything else.
func seconds(t *testing.T, r servertest.Answer) int64 {
	t.Helper()
	if r.Type != "result" || r.Payload == nil || r.Payload.Name != (xml.Name{Space: "jabber:iq:last", Local: "query"}) {
		t.Fatalf("want a jabber:iq:last result, got %s", r.XML)
	}
	if len(r.Payload.Kids) != 0 || r.Payload.Text != "" {
		t.Errorf("the query carries more than seconds: %s", r.XML)
	}
	n, err := strconv.ParseInt(r.Payload.Attr["seconds"], 10, 64)
	if err != nil || n < 0 {
		t.Fatalf("seconds %q: %v", r.Payload.Attr["seconds"], err)
	}
	return n
}

// setItem gives user's roster an item for contact with subscription sub.
func setItem(t *testing.T, srv *servertest.Server, user, contact string, sub storage.Subscription) {
	t.Helper()
	_, err := srv.Store().UpdateRosterItem(context.Background(), user, contact, func(it *storage.RosterItem, _ bool) (bool, error) {
		it.Subscription = sub
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// available sends available presence and waits for its reflection.
func available(c *servertest.IQClient) {
	c.Write(`<presence/>`)
	c.Expect(`<presence[^>]* from=["']` + regexp.QuoteMeta(c.JID()) + `["']`)
}

// TestLastServer: the server JID answers its uptime (§5).
func TestLastServer(t *testing.T) {
	before := time.Now()
	srv := servertest.Start(t)
	srv.AddUser("romeo", "montague")
	romeo := servertest.IQLogin(t, srv, "romeo", "montague")
	r := romeo.IQ("get", "localhost", lastQuery)
	if n := seconds(t, r); n > int64(time.Since(before)/time.Second)+1 || r.From != "localhost" {
		t.Errorf("uptime %d s, from %q: %s", n, r.From, r.XML)
	}
	for _, to := range []string{"localhost", "romeo@localhost"} {
		r := romeo.IQ("get", to, `<query xmlns='http://jabber.org/protocol/disco#info'/>`)
		if !regexp.MustCompile(`<feature[^>]* var=["']jabber:iq:last["']`).MatchString(r.XML) {
			t.Errorf("disco#info of %s lacks jabber:iq:last: %s", to, r.XML)
		}
	}
}

// TestLastAccount: a bare JID's last activity (§3) as its contacts and
// others see it. juliet's roster lets romeo (from) and nurse (both) see her
// presence; tybalt has none of it, and paris only a 'to' item, juliet's
// subscription to him.
func TestLastAccount(t *testing.T) {
	srv := servertest.Start(t)
	for _, u := range []string{"juliet", "romeo", "nurse", "tybalt", "paris", "rosaline"} {
		srv.AddUser(u, "pw-"+u)
	}
	setItem(t, srv, "juliet", "romeo@localhost", storage.SubFrom)
	setItem(t, srv, "juliet", "nurse@localhost", storage.SubBoth)
	setItem(t, srv, "juliet", "paris@localhost", storage.SubTo)
	setItem(t, srv, "rosaline", "romeo@localhost", storage.SubBoth)
	romeo := servertest.IQLogin(t, srv, "romeo", "pw-romeo")
	nurse := servertest.IQLogin(t, srv, "nurse", "pw-nurse")
	tybalt := servertest.IQLogin(t, srv, "tybalt", "pw-tybalt")
	paris := servertest.IQLogin(t, srv, "paris", "pw-paris")

	// Never logged in: no time to tell.
	if r := romeo.IQ("get", "juliet@localhost", lastQuery); r.Err != "cancel item-not-found" {
		t.Errorf("last activity of an account that never logged out: %s", r.XML)
	}
	// Not allowed to see her presence: forbidden, whatever there is to tell.
	for _, c := range []*servertest.IQClient{tybalt, paris} {
		if r := c.IQ("get", "juliet@localhost", lastQuery); r.Err != "auth forbidden" {
			t.Errorf("%s asks juliet: %s", c.JID(), r.XML)
		}
	}
	if r := romeo.IQ("get", "nobody@localhost", lastQuery); r.Err != "cancel service-unavailable" {
		t.Errorf("last activity of no account: %s", r.XML)
	}

	// §3's example: she logged out 903 seconds ago.
	start := time.Now()
	err := srv.Store().UpdateAccount(context.Background(), "juliet", func(a *storage.Account) error {
		a.LastLogout = start.Add(-903 * time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slack := func() int64 { return int64(time.Since(start)/time.Second) + 1 }
	for _, c := range []*servertest.IQClient{romeo, nurse} {
		r := c.IQ("get", "juliet@localhost", lastQuery)
		if n := seconds(t, r); n < 903 || n > 903+slack() || r.From != "juliet@localhost" {
			t.Errorf("%s asks juliet: %d s from %q, want 903: %s", c.JID(), n, r.From, r.XML)
		}
	}
	if r := tybalt.IQ("get", "juliet@localhost", lastQuery); r.Err != "auth forbidden" {
		t.Errorf("tybalt asks juliet: %s", r.XML)
	}
	// A session that sent no available presence does not count (nor does
	// its login, which would tell she is connected).
	juliet := servertest.IQLogin(t, srv, "juliet", "pw-juliet")
	if n := seconds(t, romeo.IQ("get", "juliet@localhost", lastQuery)); n < 903 || n > 903+slack() {
		t.Errorf("with an unavailable session: %d s, want 903", n)
	}
	// Her own, with no 'to' or to her bare JID, needs no subscription.
	for _, to := range []string{"", "juliet@localhost"} {
		if n := seconds(t, juliet.IQ("get", to, lastQuery)); n < 903 || n > 903+slack() {
			t.Errorf("her own (to %q): %d s, want 903", to, n)
		}
	}
	// Available: 0 seconds.
	available(juliet)
	if n := seconds(t, nurse.IQ("get", "juliet@localhost", lastQuery)); n != 0 {
		t.Errorf("while she is available: %d s, want 0", n)
	}
	if n := seconds(t, juliet.IQ("get", "", lastQuery)); n != 0 {
		t.Errorf("her own while available: %d s, want 0", n)
	}
	// Once her session has ended, the time counts from its end.
	juliet.Close()
	deadline := time.Now().Add(servertest.Wait)
	for online := true; online; {
		online = false
		for _, s := range srv.Sessions() {
			online = online || s.JID.Localpart() == "juliet"
		}
		if online && time.Now().After(deadline) {
			t.Fatal("juliet's session never ended")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := seconds(t, romeo.IQ("get", "juliet@localhost", lastQuery)); n > slack() {
		t.Errorf("after her logout: %d s, want at most %d", n, slack())
	}

	// Another account, another roster: romeo may see rosaline's.
	if r := romeo.IQ("get", "rosaline@localhost", lastQuery); r.Err != "cancel item-not-found" {
		t.Errorf("romeo asks rosaline: %s", r.XML)
	}
	if r := nurse.IQ("get", "rosaline@localhost", lastQuery); r.Err != "auth forbidden" {
		t.Errorf("nurse asks rosaline: %s", r.XML)
	}
	// A login after the last logout with no session bound: the server
	// stopped before that session's end was written; it counts from the
	// login.
	err = srv.Store().UpdateAccount(context.Background(), "rosaline", func(a *storage.Account) error {
		a.LastLogin, a.LastLogout = start.Add(-100*time.Second), start.Add(-200*time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := seconds(t, romeo.IQ("get", "rosaline@localhost", lastQuery)); n < 100 || n > 100+slack() {
		t.Errorf("romeo asks rosaline after an unrecorded logout: %d s, want 100", n)
	}
}
