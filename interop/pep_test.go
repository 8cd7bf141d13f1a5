package interop_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image/png"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// omemoBundle is what slixmpp_pep.py publishes as an OMEMO (XEP-0384
// 0.3) device list and bundle, and what it prints of what it read back.
type omemoBundle struct {
	Device  int     `json:"device,omitempty"`
	SPKID   int     `json:"spk_id"`
	SPK     string  `json:"spk"`
	Sig     string  `json:"sig"`
	IK      string  `json:"ik"`
	PreKeys [][]any `json:"prekeys"`
}

// TestSlixmppPEP has slixmpp 1.8.3's PEP plugins use adhocd's XEP-0163
// service the way an app does, with three accounts: alice and bob, contacts
// with a subscription both ways, and carol, nobody's contact. bob's caps
// carry the +notify features slixmpp's plugins register; the server must
// ask for them (XEP-0115) and notify him of alice's XEP-0084 avatar
// metadata (whose data he then retrieves, byte for byte), her XEP-0172
// nick and her OMEMO device list. carol reads alice's OMEMO bundle and
// device list, published with publish-options pubsub#access_model=open,
// and is refused alice's nick (presence access). When bob logs in again
// after alice published a XEP-0118 tune he gets the last tune and nick
// (XEP-0163 §4.3.2).
func TestSlixmppPEP(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	jids, args := addAccounts(t, srv, "pep", "alice", "bob", "carol")
	alice := jids[0]
	srv.Befriend("alice", "bob")

	avatar := testImage(t, png.Encode)
	avatarFile := tempFile(t, "avatar.png", avatar)
	avatarID := sha1Hex(avatar)
	nick := "Alice " + randomHex(t, 3) + " ✓"
	artist, title := "Artist "+randomHex(t, 3), "Title "+randomHex(t, 3)
	key := func(n int) string {
		b, _ := hex.DecodeString(randomHex(t, n))
		return base64.StdEncoding.EncodeToString(b)
	}
	bundle := omemoBundle{Device: 12345, SPKID: 1, SPK: key(33), Sig: key(64), IK: key(33),
		PreKeys: [][]any{{1, key(33)}, {2, key(33)}, {3, key(33)}}}
	omemo, err := json.Marshal(bundle)
	if err != nil {
		t.Fatal(err)
	}

	args = append(args,
		"--avatar", avatarFile,
		"--nick", nick,
		"--artist", artist, "--title", title,
		"--omemo", string(omemo),
		"--timeout", "90",
	)
	lines := runScript(t, 120*time.Second, "slixmpp_pep.py", withDebug(args, "PEP_DEBUG")...)

	got := byWord(lines)
	for _, f := range got["STEP_FAILED"] {
		t.Errorf("slixmpp: %s", f)
	}
	one := func(word string) (string, bool) {
		t.Helper()
		v, ok := got[word]
		if !ok {
			t.Errorf("script did not print %s", word)
			return "", false
		}
		return v[0], true
	}

	if q, ok := got["CAPS_QUERIED"]; !ok || !strings.HasPrefix(q[0], "bob http://slixmpp.com/ver/") {
		t.Errorf("the server did not ask bob for the features behind his caps (CAPS_QUERIED %q)", q)
	}
	// Item ids: slixmpp names the avatar data and metadata by the SHA-1
	// of the image, the others "current"; the server keeps them.
	wantIDs := []string{"avatar-data " + avatarID, "avatar-metadata " + avatarID, "nick current",
		"devicelist current", "bundle current", "tune current"}
	if !slices.Equal(got["PUBLISHED"], wantIDs) {
		t.Errorf("published %q, want %q", got["PUBLISHED"], wantIDs)
	}

	// The avatar.
	if s, ok := one("AVATAR_META"); ok {
		var m struct {
			ID, Type, From string
			Bytes          int
		}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		if m.ID != avatarID || m.Type != "image/png" || m.Bytes != len(avatar) || m.From != alice {
			t.Errorf("avatar metadata %+v, want id %s, image/png, %d bytes, from %s", m, avatarID, len(avatar), alice)
		}
	}
	if s, ok := one("AVATAR_OK"); ok && s != avatarID {
		t.Errorf("bob retrieved an avatar of SHA-1 %s, want %s", s, avatarID)
	}

	// The nick.
	if s, ok := one("NICK"); ok && s != nick {
		t.Errorf("bob was notified of the nick %q, want %q", s, nick)
	}

	// OMEMO.
	if s, ok := one("DEVICELIST_NOTIFIED"); ok && s != "[12345]" {
		t.Errorf("bob was notified of the device list %s, want [12345]", s)
	}
	if s, ok := one("BUNDLE"); ok {
		var b omemoBundle
		if err := json.Unmarshal([]byte(s), &b); err != nil {
			t.Fatal(err)
		}
		want := bundle
		want.Device = 0
		w, _ := json.Marshal(want)
		g, _ := json.Marshal(b)
		if !bytes.Equal(w, g) {
			t.Errorf("carol read the bundle\n%s\nwant\n%s", g, w)
		}
	}
	one("BUNDLE_OK")
	if s, ok := one("DEVICELIST"); ok && s != `{"ids": [12345]}` {
		t.Errorf("carol read the device list %s", s)
	}
	one("DEVICELIST_OK")
	if s, ok := one("DENIED"); ok && s != "nick not-authorized presence-subscription-required" {
		t.Errorf("carol reading alice's nick: %s, want not-authorized with presence-subscription-required (XEP-0060 §6.5.9, the presence access model)", s)
	}

	// The last items, for bob's next session.
	if s, ok := one("LAST_TUNE"); ok {
		var tune struct{ Artist, Title string }
		if err := json.Unmarshal([]byte(s), &tune); err != nil {
			t.Fatal(err)
		}
		if tune.Artist != artist || tune.Title != title {
			t.Errorf("bob's new session got the tune %+v, want %s, %s", tune, artist, title)
		}
	}
	if s, ok := one("LAST_NICK"); ok && s != nick {
		t.Errorf("bob's new session got the nick %q, want %q", s, nick)
	}
	one("OK")
}

// nbBookmark is a XEP-0402 bookmark as nbxmpp_pep.py passes and prints it.
type nbBookmark struct {
	JID      string  `json:"jid"`
	Name     *string `json:"name"`
	Nick     *string `json:"nick"`
	Autojoin bool    `json:"autojoin"`
	Password *string `json:"password"`
}

// TestNbxmppPEP has nbxmpp 4.2.2 (Gajim 1.7's library) publish an avatar
// (XEP-0084) and bookmarks (XEP-0402) through the modules Gajim calls, and
// read them back: the avatar data and metadata, published with
// publish-options access_model presence; the avatar made public (the
// publish-options now differ from the nodes' configuration, the server
// answers precondition-not-met and nbxmpp reconfigures the nodes through
// their configuration form, XEP-0060 §7.1.5 and §8.2, then publishes
// again); the access model changed back through the form as Gajim's
// privacy setting does; two bookmarks stored, read, one retracted.
func TestNbxmppPEP(t *testing.T) {
	requireNbxmpp(t)
	srv := servertest.Start(t)
	const pw = "gajim-pep-pw"
	user := srv.AddUser("gajim", pw)
	avatar := testImage(t, png.Encode)
	avatarFile := tempFile(t, "avatar.png", avatar)
	avatarID := sha1Hex(avatar)
	str := func(s string) *string { return &s }
	marks := []nbBookmark{
		{JID: "tea-" + randomHex(t, 3) + "@conference.localhost", Name: str("Tea ✓ " + randomHex(t, 2)), Nick: str("gajim"), Autojoin: true},
		{JID: "coffee-" + randomHex(t, 3) + "@conference.localhost", Name: str("Coffee"), Nick: str("g2")},
	}
	marksJSON, err := json.Marshal(marks)
	if err != nil {
		t.Fatal(err)
	}
	args := append(serverArgs(t, srv),
		"--jid", user, "--password", pw,
		"--avatar", avatarFile,
		"--bookmarks", string(marksJSON),
		"--timeout", "60",
	)
	lines := runScript(t, 90*time.Second, "nbxmpp_pep.py", withDebug(args, "PEP_DEBUG")...)

	done := map[string]bool{}
	access := map[string]string{}
	bookmarks := map[string][]nbBookmark{}
	var meta, data string
	var disco struct {
		Identities     []string `json:"identities"`
		Features       []string `json:"features"`
		GajimBookmarks string   `json:"gajim_bookmarks"`
	}
	ok := scanLines(lines, func(word, rest string) {
		switch word {
		case "DONE":
			done[rest] = true
		case "ERROR":
			t.Errorf("nbxmpp: %s", rest)
		case "ACCOUNT_DISCO":
			if err := json.Unmarshal([]byte(rest), &disco); err != nil {
				t.Fatalf("%s %s: %v", word, rest, err)
			}
		case "AVATAR_META":
			meta = rest
		case "AVATAR_DATA":
			data = rest
		case "ACCESS":
			f := strings.Fields(rest)
			if len(f) == 3 {
				access[f[0]+" "+f[1]] = f[2]
			}
		case "BOOKMARKS":
			label, b := cutJSON[[]nbBookmark](t, word, rest)
			bookmarks[label] = b
		}
	})
	if !ok {
		t.Error("script did not print OK")
	}
	for _, step := range []string{"set-avatar", "set-avatar-public", "set-access-model", "store-bookmarks", "retract-bookmark"} {
		if !done[step] {
			t.Errorf("step %s did not complete", step)
		}
	}

	// Gajim turns PEP on for the pubsub/pep identity of the account and
	// publishes with options only when publish-options is advertised.
	if !slices.Contains(disco.Identities, "pubsub/pep") || !slices.Contains(disco.Features, "http://jabber.org/protocol/pubsub#publish-options") {
		t.Errorf("account disco#info %+v lacks the pubsub/pep identity or pubsub#publish-options", disco)
	}
	// The bookmark storage Gajim 1.7.3 picks: NativeBookmarks (XEP-0402)
	// with urn:xmpp:bookmarks:1#compat-pep and pubsub#config-node-max,
	// which say the server keeps XEP-0048 clients' bookmarks the same
	// list (modules/bookmarks); PrivateBookmarks otherwise.
	if disco.GajimBookmarks != "NativeBookmarks" {
		t.Errorf("Gajim 1.7.3 would store bookmarks with %s, want NativeBookmarks (XEP-0402); account features %q", disco.GajimBookmarks, disco.Features)
	}

	// The avatar, read back.
	wantMeta := `{"default": "` + avatarID + `", "infos": [{"id": "` + avatarID + `", "type": "image/png", "bytes": ` +
		strconv.Itoa(len(avatar)) + `, "width": 16, "height": 16}]}`
	if meta != wantMeta {
		t.Errorf("avatar metadata %s, want %s", meta, wantMeta)
	}
	if want := `{"sha": "` + avatarID + `", "bytes": ` + strconv.Itoa(len(avatar)) + `, "same": true}`; data != want {
		t.Errorf("avatar data %s, want %s", data, want)
	}
	for _, node := range []string{"urn:xmpp:avatar:data", "urn:xmpp:avatar:metadata"} {
		if m := access["public "+node]; m != "open" {
			t.Errorf("%s after set_avatar(public=True): access model %q, want open", node, m)
		}
		if m := access["contacts "+node]; m != "presence" {
			t.Errorf("%s after set_access_model(False): access model %q, want presence", node, m)
		}
	}

	// The bookmarks, in the order they were stored.
	if !slices.EqualFunc(bookmarks["stored"], marks, equalBookmark) {
		t.Errorf("bookmarks read back %s, want %s", mustJSON(bookmarks["stored"]), marksJSON)
	}
	if !slices.EqualFunc(bookmarks["retracted"], marks[:1], equalBookmark) {
		t.Errorf("bookmarks after retracting %s: %s, want %s", marks[1].JID, mustJSON(bookmarks["retracted"]), mustJSON(marks[:1]))
	}
}

func equalBookmark(a, b nbBookmark) bool {
	eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.JID == b.JID && eq(a.Name, b.Name) && eq(a.Nick, b.Nick) && a.Autojoin == b.Autojoin && eq(a.Password, b.Password)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
