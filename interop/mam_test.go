package interop_test

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/config"
	"github.com/adhocd/adhocd/servertest"
)

// mamResult is one archived message as slixmpp_mam.py and nbxmpp_mam.py
// print it.
type mamResult struct {
	ID      string `json:"id"`
	QueryID string `json:"queryid"`
	From    string `json:"from"`
	To      string `json:"to"`
	Body    string `json:"body"`
	// Stamp is the XEP-0203 delay's stamp attribute as sent.
	Stamp string `json:"stamp"`
	// StampParsed is what the client library made of it (ISO 8601 or
	// seconds since the epoch), empty when it failed with StampError.
	StampParsed any    `json:"stamp_parsed"`
	StampError  string `json:"stamp_error"`
}

// mamPage is the <fin/> of one page as the scripts print it.
type mamPage struct {
	N        int    `json:"n"`
	First    string `json:"first"`
	Last     string `json:"last"`
	Complete bool   `json:"complete"`
}

// mamLines gathers the RESULT, PAGE and DONE lines of a script by label.
type mamLines struct {
	results map[string][]mamResult
	pages   map[string][]mamPage
	done    map[string]bool
	other   map[string][]string // by first word
}

func parseMAMLines(t *testing.T, lines []string) mamLines {
	t.Helper()
	m := mamLines{results: map[string][]mamResult{}, pages: map[string][]mamPage{}, done: map[string]bool{}, other: map[string][]string{}}
	for _, line := range lines {
		word, rest, _ := strings.Cut(line, " ")
		label, js, _ := strings.Cut(rest, " ")
		switch word {
		case "RESULT":
			var r mamResult
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			m.results[label] = append(m.results[label], r)
		case "PAGE":
			var p mamPage
			if err := json.Unmarshal([]byte(js), &p); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			m.pages[label] = append(m.pages[label], p)
		case "DONE":
			m.done[label] = true
		case "STEP_FAILED", "ERROR":
			t.Errorf("%s", line)
		default:
			m.other[word] = append(m.other[word], rest)
		}
	}
	return m
}

// bodies returns the bodies of rs in their order.
func bodies(rs []mamResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Body
	}
	return out
}

// checkStamps checks every result carries a stamp of the test's time, in
// the archive's order, that the client library could read; the stamps it
// could not read are reported once, with the first of them.
func checkStamps(t *testing.T, label string, rs []mamResult, since time.Time) {
	t.Helper()
	var prev time.Time
	var unread []mamResult
	for _, r := range rs {
		if r.StampError != "" || r.StampParsed == nil {
			unread = append(unread, r)
		}
		s, err := time.Parse(time.RFC3339Nano, r.Stamp)
		if err != nil {
			t.Errorf("%s: %q has no XEP-0082 stamp (%q): %v", label, r.Body, r.Stamp, err)
			continue
		}
		if s.Before(since) || s.After(time.Now()) || s.Before(prev) {
			t.Errorf("%s: %q stamped %s: want a time between %s and now, not before the one before (%s)", label, r.Body, s, since, prev)
		}
		prev = s
	}
	if len(unread) > 0 {
		t.Errorf("%s: the client could not read %d of %d stamps, the first <delay stamp=%q/>: %s",
			label, len(unread), len(rs), unread[0].Stamp, unread[0].StampError)
	}
}

// TestSlixmppMAM has slixmpp 1.8.3's XEP-0313 plugin read adhocd's message
// archive as an app does. alice and bob exchange --rounds messages each way
// (each waits for the other's) and carol sends alice two in between; then a
// new session of alice's reads her archive with the plugin, 5 messages a
// page (XEP-0059): filtered by with=bob, page by page forwards, each <fin/>
// complete only on the last page; backwards with the plugin's reverse
// option, the newest first; unfiltered; one page alone; from a start
// stamp, and up to an end stamp, the plugin read from a result (both
// inclusive). Every message is there once, in the order of the
// conversation, with a XEP-0203 stamp slixmpp can parse (XEP-0313 §4.2):
// slixmpp 1.8.3's xep_0082.parse takes at most six fractional digits
// (strptime's %f), so a stamp in nanoseconds fails with ValueError in the
// plugin, and cut to microseconds by hand it is earlier than the message,
// which an inclusive end then leaves out. Every message alice received live carried a XEP-0359 stanza-id by
// her bare JID whose id is the archive's id of that message (XEP-0313 §5.3).
func TestSlixmppMAM(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	const alicePW, bobPW, carolPW = "mam-alice", "mam-bob", "mam-carol"
	alice := srv.AddUser("alice", alicePW)
	bob := srv.AddUser("bob", bobPW)
	carol := srv.AddUser("carol", carolPW)
	tag := "mam-" + randomHex(t, 6) + "-✓"
	const rounds = 6
	since := time.Now().Add(-time.Second)

	args := append(serverArgs(t, srv),
		"--alice-jid", alice, "--alice-password", alicePW,
		"--bob-jid", bob, "--bob-password", bobPW,
		"--carol-jid", carol, "--carol-password", carolPW,
		"--tag", tag, "--rounds", fmt.Sprint(rounds),
		"--timeout", "90",
	)
	if os.Getenv("MAM_DEBUG") != "" {
		args = append(args, "--debug")
	}
	lines := runScript(t, 120*time.Second, "slixmpp_mam.py", args...)
	m := parseMAMLines(t, lines)
	if _, ok := m.other["OK"]; !ok {
		t.Errorf("script did not print OK")
	}

	// What the archive must hold, in the order of the conversation.
	var withBob, all []string
	for i := 1; i <= rounds; i++ {
		a2b, b2a := fmt.Sprintf("%s a2b %d", tag, i), fmt.Sprintf("%s b2a %d", tag, i)
		withBob = append(withBob, a2b, b2a)
		all = append(all, a2b, b2a)
		if i == 2 || i == 4 {
			all = append(all, fmt.Sprintf("%s c2a %d", tag, i/2))
		}
	}
	reversed := slices.Clone(withBob)
	slices.Reverse(reversed)

	if f := m.other["FIELDS"]; len(f) != 1 || !strings.Contains(f[0], `"with"`) || !strings.Contains(f[0], `"start"`) ||
		!strings.Contains(f[0], `"end"`) || !strings.Contains(f[0], `"FORM_TYPE"`) {
		t.Errorf("get_fields: %q, want FORM_TYPE, with, start and end among them (XEP-0313 §5.1)", f)
	}

	// start and end: the 7th message's stamp as the plugin read it (or
	// cut to microseconds, START_FROM cut); what a client expects is every
	// message whose stamp, as the server showed it, is in the range, and
	// the 7th among them either way.
	var bound time.Time
	if f := m.other["START_FROM"]; len(f) == 1 {
		_, iso, _ := strings.Cut(f[0], " ")
		var err error
		if bound, err = time.Parse(time.RFC3339Nano, iso); err != nil {
			t.Errorf("START_FROM %q: %v", f[0], err)
		}
	} else {
		t.Errorf("START_FROM %q: want one", f)
	}
	var fromStart, toEnd []string
	for _, r := range m.results["with"] {
		st, err := time.Parse(time.RFC3339Nano, r.Stamp)
		if err != nil {
			continue // checkStamps reports it
		}
		if !st.Before(bound) {
			fromStart = append(fromStart, r.Body)
		}
		if !st.After(bound) {
			toEnd = append(toEnd, r.Body)
		}
	}
	if len(toEnd) < 7 || !slices.Equal(toEnd[:7], withBob[:7]) ||
		len(fromStart) < 6 || !slices.Equal(fromStart[len(fromStart)-6:], withBob[6:]) {
		t.Errorf("the 7th message is not within its own stamp %s: from it %q, up to it %q", bound, fromStart, toEnd)
	}

	for _, c := range []struct {
		label string
		want  []string
		pages []int  // page sizes, when the script printed the pages
		why   string // what a wrong answer means, when it is not plain
	}{
		{"with", withBob, []int{5, 5, 2}, ""},
		{"reverse", reversed, nil, ""},
		{"all", all, nil, ""},
		{"one-page", all[:5], []int{5}, ""},
		{"start", fromStart, []int{len(fromStart)}, "start is inclusive (XEP-0313 §4.1.1): from " + bound.String() +
			", the 7th message's stamp as the client read it, every message whose stamp is not earlier"},
		{"end", toEnd, []int{len(toEnd)}, "end is inclusive (XEP-0313 §4.1.1): up to " + bound.String() +
			", the 7th message's stamp as the client read it, every message whose stamp is not later " +
			"(a stamp finer than the client can send back falls out)"},
	} {
		rs := m.results[c.label]
		if !m.done[c.label] {
			t.Errorf("%s: the step did not finish", c.label)
		}
		if got := bodies(rs); !slices.Equal(got, c.want) {
			t.Errorf("%s: archive bodies\n%q\nwant\n%q\n%s", c.label, got, c.want, c.why)
		}
		checkStamps(t, c.label, orderedForStamps(c.label, rs), since)
		ids := map[string]bool{}
		for _, r := range rs {
			if r.ID == "" || ids[r.ID] || r.QueryID == "" {
				t.Errorf("%s: %q has result id %q (a repeat or empty) and queryid %q", c.label, r.Body, r.ID, r.QueryID)
			}
			ids[r.ID] = true
			wantFrom, wantTo := alice, bob
			switch {
			case strings.Contains(r.Body, " b2a "):
				wantFrom, wantTo = bob, alice
			case strings.Contains(r.Body, " c2a "):
				wantFrom, wantTo = carol, alice
			}
			if bare(r.From) != wantFrom || bare(r.To) != wantTo {
				t.Errorf("%s: %q archived from %q to %q, want %s to %s", c.label, r.Body, r.From, r.To, wantFrom, wantTo)
			}
		}
		if c.pages != nil {
			var sizes []int
			for i, p := range m.pages[c.label] {
				sizes = append(sizes, p.N)
				last := i == len(c.pages)-1
				if last && c.label == "one-page" {
					last = false // five of fourteen
				}
				if p.Complete != last {
					t.Errorf("%s: page %d <fin complete=%v>, want %v (XEP-0313 §4.3)", c.label, i+1, p.Complete, last)
				}
			}
			if !slices.Equal(sizes, c.pages) {
				t.Errorf("%s: pages of %v, want %v", c.label, sizes, c.pages)
			}
		}
	}

	// The live copies' stanza-ids are the archive's ids.
	archived := map[string]string{}
	for _, r := range m.results["all"] {
		archived[r.Body] = r.ID
	}
	var live int
	for _, l := range m.other["LIVE"] {
		var msg struct {
			Body  string  `json:"body"`
			From  string  `json:"from"`
			SIDBy *string `json:"sid_by"`
			SIDID *string `json:"sid_id"`
		}
		if err := json.Unmarshal([]byte(l), &msg); err != nil {
			t.Fatalf("LIVE %s: %v", l, err)
		}
		live++
		switch {
		case msg.SIDBy == nil || msg.SIDID == nil:
			t.Errorf("alice received %q without a stanza-id (XEP-0359)", msg.Body)
		case *msg.SIDBy != alice:
			t.Errorf("alice received %q with a stanza-id by %q, want her bare JID %s", msg.Body, *msg.SIDBy, alice)
		case *msg.SIDID != archived[msg.Body]:
			t.Errorf("alice received %q with stanza-id %q, but the archive has it as %q", msg.Body, *msg.SIDID, archived[msg.Body])
		}
	}
	if live != rounds+2 {
		t.Errorf("alice received %d messages live, want %d", live, rounds+2)
	}
}

// orderedForStamps returns rs in archive order (the reverse step lists
// the newest first).
func orderedForStamps(label string, rs []mamResult) []mamResult {
	if label != "reverse" {
		return rs
	}
	out := slices.Clone(rs)
	slices.Reverse(out)
	return out
}

func bare(j string) string {
	b, _, _ := strings.Cut(j, "/")
	return b
}

// TestNbxmppMAM has nbxmpp 4.2.2 (Gajim 1.7's library) sync an account's
// archive the way Gajim 1.7.3 does, against a server that pages by at most 5
// (limits.mam.max_page), below nbxmpp's 70: each sync asks again with
// after=<the last id> until the <fin/> says complete (XEP-0313 §4.3).
//
//   - First sign-in: the last week (start), 8 messages in 5 + 3, every
//     result with the query's queryid, from the account's archive, stamped.
//   - A live message carries a stanza-id by the account's bare JID
//     (XEP-0359): Gajim keeps it as its last_mam_id.
//   - Next sign-in, after messages sent while it was away (some kept
//     offline): after=last_mam_id, exactly the 6 messages since, in 5 + 1;
//     the offline copies carry the stanza-ids the archive has them under,
//     which is how Gajim tells them from the archived copies. Asked again
//     after the last id: nothing, complete.
//   - An id the archive never had: item-not-found (XEP-0313 §4.1.2), on
//     which Gajim starts over from a date.
//   - The history browser's interval (start and end). (nbxmpp 4.2.2's
//     make_query cannot send a with filter: it fails building the
//     jid-single field; Gajim does not use it on the account's archive.)
//   - Archiving preferences (XEP-0313 §6): read, set (roster, always romeo,
//     never carol), read back, obeyed (carol's next message is neither
//     archived nor stamped with a stanza-id, romeo's is), restored.
func TestNbxmppMAM(t *testing.T) {
	requireNbxmpp(t)
	srv := servertest.Start(t, func(c *config.Config) { c.Limits.MAM.MaxPage = 5 })
	const pw, romeoPW, carolPW = "gajim-mam-pw", "romeo-mam-pw", "carol-mam-pw"
	user := srv.AddUser("gajim", pw)
	romeoJID := srv.AddUser("romeo", romeoPW)
	carolJID := srv.AddUser("carol", carolPW)
	since := time.Now().Add(-time.Second)
	tag := "gajim-mam-" + randomHex(t, 4) + " ✓"
	body := func(s string) string { return tag + " " + s }

	phone := srv.Dial("gajim", pw, "")
	romeo := srv.Dial("romeo", romeoPW, "")
	carol := srv.Dial("carol", carolPW, "")
	ctx := servertest.Context(t, 2*time.Minute)
	archived := 0
	// send sends a chat message and, when it is to be archived, waits
	// until the account's archive has it, so that the archive's order is
	// the order of the calls.
	send := func(c *servertest.Client, to, text string, archive bool) {
		t.Helper()
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(text))
		if err := c.SendRaw(ctx, `<message type="chat" to="`+to+`"><body>`+b.String()+`</body></message>`); err != nil {
			t.Fatalf("send %q: %v", text, err)
		}
		if !archive {
			return
		}
		archived++
		deadline := time.Now().Add(servertest.Wait)
		for {
			n, _, err := srv.Store().ArchiveSize(ctx, "gajim")
			if err != nil {
				t.Fatal(err)
			}
			if n >= archived {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%q not archived: the archive holds %d, want %d", text, n, archived)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := phone.SendRaw(ctx, `<presence/>`); err != nil {
		t.Fatal(err)
	}

	// Before the first sign-in: what the phone saw.
	first := []struct {
		from *servertest.Client
		to   string
		text string
	}{
		{romeo, user, "r1"}, {phone, romeoJID, "p1"}, {romeo, user, "r2"}, {phone, romeoJID, "p2"},
		{carol, user, "c1"}, {romeo, user, "r3"}, {phone, romeoJID, "p3"}, {romeo, user, "r4"},
	}
	var sync1 []string
	for _, m := range first {
		send(m.from, m.to, body(m.text), true)
		sync1 = append(sync1, body(m.text))
	}
	sync2 := []string{body("p4"), body("r5"), body("p5"), body("r6"), body("c2"), body("r7")}
	offline := []string{body("r5"), body("r6"), body("c2"), body("r7")}
	notArchived, alwaysArchived := body("c3 never"), body("r8 always")
	offlineJSON, _ := json.Marshal(offline)
	prefsJSON, _ := json.Marshal([]string{notArchived, alwaysArchived})

	args := append(serverArgs(t, srv),
		"--jid", user, "--password", pw,
		"--live", body("live"),
		"--offline", string(offlineJSON),
		"--always", romeoJID, "--never", carolJID,
		"--prefs-bodies", string(prefsJSON),
		"--timeout", "90",
	)
	if os.Getenv("MAM_DEBUG") != "" {
		args = append(args, "--debug")
	}
	s := startScript(t, 120*time.Second, "nbxmpp_mam.py", args...)
	if _, ok := s.next("READY live", 60*time.Second); !ok {
		s.finish()
		t.Fatal("nbxmpp_mam.py did not get to READY live")
	}
	send(romeo, user, body("live"), true)
	if _, ok := s.next("OFFLINE", 30*time.Second); !ok {
		s.finish()
		t.Fatal("nbxmpp_mam.py did not get to OFFLINE")
	}
	// The phone goes away too: romeo's and carol's messages are kept
	// offline (its presence goes before its message p4).
	if err := phone.SendRaw(ctx, `<presence type="unavailable"/>`); err != nil {
		t.Fatal(err)
	}
	send(phone, romeoJID, body("p4"), true)
	send(romeo, user, body("r5"), true)
	send(phone, romeoJID, body("p5"), true)
	send(romeo, user, body("r6"), true)
	send(carol, user, body("c2"), true)
	send(romeo, user, body("r7"), true)
	if _, err := io.WriteString(s.stdin, "go on\n"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.next("READY prefs", 60*time.Second); !ok {
		s.finish()
		t.Fatal("nbxmpp_mam.py did not get to READY prefs")
	}
	send(carol, user, notArchived, false)
	send(romeo, user, alwaysArchived, true)
	s.finish()

	lines := strings.Split(strings.TrimSpace(s.stdout.String()), "\n")
	m := parseMAMLines(t, lines)
	if _, ok := m.other["OK"]; !ok {
		t.Errorf("script did not print OK")
	}
	if d := m.other["DISCO"]; len(d) != 1 || !strings.Contains(d[0], `"mam2": true`) {
		t.Errorf("disco#info of the account: %q, want urn:xmpp:mam:2 (Gajim turns MAM on by it)", d)
	}

	// The live messages, and the stanza-ids Gajim reads from them.
	type liveMsg struct {
		Body        string     `json:"body"`
		From        string     `json:"from"`
		StanzaIDs   [][]string `json:"stanza_ids"`
		ServerDelay bool       `json:"server_delay"`
	}
	live := map[string]liveMsg{}
	for _, l := range m.other["LIVE"] {
		var msg liveMsg
		if err := json.Unmarshal([]byte(l), &msg); err != nil {
			t.Fatalf("LIVE %s: %v", l, err)
		}
		if _, dup := live[msg.Body]; dup {
			t.Errorf("%q delivered twice", msg.Body)
		}
		live[msg.Body] = msg
	}
	sidOf := func(b string) string {
		for _, s := range live[b].StanzaIDs {
			if len(s) == 2 && s[0] == user {
				return s[1]
			}
		}
		return ""
	}

	nbResults := map[string][]nbResult{}
	for _, line := range lines {
		if word, rest, _ := strings.Cut(line, " "); word == "RESULT" {
			label, js, _ := strings.Cut(rest, " ")
			var r nbResult
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			nbResults[label] = append(nbResults[label], r)
		}
	}

	interval := append(append(append([]string{}, sync1...), body("live")), sync2...)
	for _, c := range []struct {
		label string
		want  []string
		pages []int
	}{
		{"sync1", sync1, []int{5, 3}},
		{"sync2", sync2, []int{5, 1}},
		{"sync-again", nil, []int{0}},
		{"interval", interval, []int{5, 5, 5}},
		{"sync3", []string{alwaysArchived}, []int{1}},
	} {
		rs := nbResults[c.label]
		var got []string
		for _, r := range rs {
			got = append(got, r.Body)
			if !r.QueryIDOK || !r.ArchiveOK {
				t.Errorf("%s: %q: queryid %q is the query's: %v; archive %q is the account's: %v (Gajim drops it otherwise)",
					c.label, r.Body, r.QueryID, r.QueryIDOK, r.Archive, r.ArchiveOK)
			}
			wantKind, wantJID := "received", romeoJID
			switch {
			case strings.Contains(r.Body, " p"):
				wantKind = "sent"
			case strings.Contains(r.Body, " c"):
				wantJID = carolJID
			}
			if r.Kind != wantKind || bare(r.JID) != wantJID {
				t.Errorf("%s: %q read as %s with %s, want %s with %s", c.label, r.Body, r.Kind, r.JID, wantKind, wantJID)
			}
			stamp := time.Unix(0, int64(r.Stamp*1e9))
			if stamp.Before(since) || stamp.After(time.Now()) {
				t.Errorf("%s: %q stamped %s by nbxmpp, want a time of the test", c.label, r.Body, stamp)
			}
			// The offline copy and the live one carry the archive's id.
			if sid := sidOf(r.Body); slices.Contains(offline, r.Body) || r.Body == body("live") || r.Body == alwaysArchived {
				if sid != r.ID {
					t.Errorf("%s: %q is %q in the archive, but its delivered copy had stanza-id %q by %s", c.label, r.Body, r.ID, sid, user)
				}
			}
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: archive bodies\n%q\nwant\n%q", c.label, got, c.want)
		}
		var sizes []int
		pages := m.pages[c.label]
		for i, p := range pages {
			sizes = append(sizes, p.N)
			if p.Complete != (i == len(pages)-1) {
				t.Errorf("%s: page %d of %d complete=%v", c.label, i+1, len(pages), p.Complete)
			}
		}
		if !slices.Equal(sizes, c.pages) {
			t.Errorf("%s: pages of %v, want %v", c.label, sizes, c.pages)
		}
	}
	for _, b := range offline {
		if msg, ok := live[b]; !ok || !msg.ServerDelay {
			t.Errorf("%q kept offline: delivered %v, with the server's delay %v", b, ok, msg.ServerDelay)
		}
	}
	if sid := sidOf(notArchived); sid != "" {
		t.Errorf("%q came with stanza-id %q, but preferences say never archive %s", notArchived, sid, carolJID)
	}
	if _, ok := live[notArchived]; !ok {
		t.Errorf("%q (not archived) was not delivered", notArchived)
	}

	var unknown []string
	for _, l := range lines {
		if word, rest, _ := strings.Cut(l, " "); word == "ERROR_EXPECTED" {
			unknown = append(unknown, rest)
		}
	}
	for _, label := range []string{"unknown-id", "unknown-uuid"} {
		if !slices.ContainsFunc(unknown, func(u string) bool {
			return strings.HasPrefix(u, label+" ") && strings.Contains(u, `"condition": "item-not-found"`)
		}) {
			t.Errorf("%s: after an id the archive never had, want item-not-found; got %q", label, unknown)
		}
	}

	prefs := map[string]string{}
	for _, p := range m.other["PREFS"] {
		label, js, _ := strings.Cut(p, " ")
		prefs[label] = js
	}
	none := `{"default": "always", "always": [], "never": []}`
	for label, want := range map[string]string{
		"prefs-initial":  none,
		"prefs-set":      `{"default": "roster", "always": ["` + romeoJID + `"], "never": ["` + carolJID + `"]}`,
		"prefs-restored": none,
	} {
		if prefs[label] != want {
			t.Errorf("%s: preferences %s, want %s", label, prefs[label], want)
		}
	}
	for _, label := range []string{"set-prefs", "restore-prefs"} {
		if !m.done[label] {
			t.Errorf("%s did not succeed", label)
		}
	}
}

// nbResult is one archived message as nbxmpp_mam.py prints it.
type nbResult struct {
	ID        string  `json:"id"`
	QueryID   string  `json:"queryid"`
	QueryIDOK bool    `json:"queryid_ok"`
	Archive   string  `json:"archive"`
	ArchiveOK bool    `json:"archive_ok"`
	From      string  `json:"from"`
	To        string  `json:"to"`
	JID       string  `json:"jid"`
	Kind      string  `json:"kind"`
	Body      string  `json:"body"`
	Stamp     float64 `json:"stamp_parsed"`
}
