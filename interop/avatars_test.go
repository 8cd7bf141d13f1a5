package interop_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
)

// TestSlixmppAvatarConversion has slixmpp 1.8.3's avatar plugins meet
// across XEP-0398's conversion: a user sees a contact's avatar whichever
// way the contact set it and whichever kind the user's client reads.
// bob, a contact of alice and of carol, loads xep_0153 and xep_0054
// (vCard-based avatars) and xep_0084 with +notify for
// urn:xmpp:avatar:metadata in his caps.
//
//   - alice, with xep_0084 only, publishes a JPEG avatar (data, then
//     metadata of type image/jpeg) and sends presence: bob's xep_0153 fires
//     vcard_avatar_update with the image's SHA-1, which the server put in
//     her presence; the vCard bob fetches from her bare JID has that image,
//     byte for byte, as its PHOTO, of TYPE image/jpeg.
//   - carol, with xep_0153 only, sets a PNG avatar with set_avatar (her
//     vCard's PHOTO): bob is notified of XEP-0084 metadata from her whose
//     info has the image's SHA-1 as id, image/png and its size;
//     retrieve_avatar gives him the same bytes; her presence carries the
//     hash.
func TestSlixmppAvatarConversion(t *testing.T) {
	requireSlixmpp(t)
	srv := servertest.Start(t)
	_, args := addAccounts(t, srv, "avatar", "alice", "bob", "carol")
	srv.Befriend("alice", "bob")
	srv.Befriend("carol", "bob")

	aliceImg, carolImg := testImage(t, encodeJPEG), testImage(t, png.Encode)
	aliceFile, carolFile := tempFile(t, "alice.jpg", aliceImg), tempFile(t, "carol.png", carolImg)
	aliceID, carolID := sha1Hex(aliceImg), sha1Hex(carolImg)

	args = append(args,
		"--alice-avatar", aliceFile, "--alice-type", "image/jpeg",
		"--carol-avatar", carolFile,
		"--timeout", "30",
	)
	lines := runScript(t, 45*time.Second, "slixmpp_avatars.py", withDebug(args, "AVATARS_DEBUG")...)

	got := map[string]string{}
	ok := scanLines(lines, func(word, rest string) {
		switch word {
		case "STEP_FAILED":
			t.Errorf("slixmpp: %s", rest)
		case "CAPS_QUERIED", "PUBLISHED", "AVATAR_UPDATE", "VCARD_PHOTO", "AVATAR_META", "AVATAR_DATA":
			who, v, _ := strings.Cut(rest, " ")
			got[word+" "+who] = v
		}
	})
	if !ok {
		t.Error("script did not print OK")
	}
	if _, asked := got["CAPS_QUERIED bob"]; !asked {
		t.Error("the server did not ask bob for the features behind his caps")
	}
	if g := got["PUBLISHED avatar-data"] + " " + got["PUBLISHED avatar-metadata"]; g != aliceID+" "+aliceID {
		t.Errorf("alice's avatar data and metadata published as items %q, want both %s", g, aliceID)
	}

	// XEP-0084 to vCard (XEP-0398 §3.1, §4).
	if g := got["AVATAR_UPDATE alice"]; g != aliceID {
		t.Errorf("bob's vcard_avatar_update for alice's presence had photo %q, want her avatar's SHA-1 %s (XEP-0398 §4: the server adds it)", g, aliceID)
	}
	if s, found := got["VCARD_PHOTO alice"]; !found {
		t.Error("bob did not fetch alice's vCard")
	} else {
		var p struct{ Type, Binval string }
		if err := json.Unmarshal([]byte(s), &p); err != nil {
			t.Fatalf("VCARD_PHOTO %s: %v", s, err)
		}
		img, err := base64.StdEncoding.DecodeString(p.Binval)
		if err != nil {
			t.Fatalf("VCARD_PHOTO %s: %v", s, err)
		}
		if p.Type != "image/jpeg" {
			t.Errorf("alice's vCard PHOTO has TYPE %q, want image/jpeg, the type her metadata named", p.Type)
		}
		if !bytes.Equal(img, aliceImg) {
			t.Errorf("alice's vCard PHOTO BINVAL has %d bytes (SHA-1 %s), want the %d she published (%s)", len(img), sha1Hex(img), len(aliceImg), aliceID)
		}
	}

	// vCard to XEP-0084 (XEP-0398 §3.2).
	if s, found := got["AVATAR_META carol"]; !found {
		t.Error("bob was not notified of carol's avatar metadata")
	} else {
		var m struct {
			ID, Type string
			Bytes    int
		}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("AVATAR_META %s: %v", s, err)
		}
		if m.ID != carolID || m.Type != "image/png" || m.Bytes != len(carolImg) {
			t.Errorf("carol's avatar metadata %+v, want id %s, image/png, %d bytes", m, carolID, len(carolImg))
		}
	}
	if s, found := got["AVATAR_DATA carol"]; !found {
		t.Error("bob did not retrieve carol's avatar data")
	} else if img, err := base64.StdEncoding.DecodeString(s); err != nil || !bytes.Equal(img, carolImg) {
		t.Errorf("carol's avatar data as bob retrieved it has %d bytes (SHA-1 %s), want her vCard's %d (%s)", len(img), sha1Hex(img), len(carolImg), carolID)
	}
	if g := got["AVATAR_UPDATE carol"]; g != carolID {
		t.Errorf("bob's vcard_avatar_update for carol's presence had photo %q, want %s", g, carolID)
	}
}

// testImage is a small image no run has published before, encoded with
// encode.
func testImage(t *testing.T, encode func(io.Writer, image.Image) error) []byte {
	t.Helper()
	seed, _ := hex.DecodeString(randomHex(t, 3))
	img := image.NewRGBA(image.Rect(0, 0, 16, 16))
	for x := range 16 {
		for y := range 16 {
			img.Set(x, y, color.RGBA{seed[0] ^ uint8(x*16), seed[1] ^ uint8(y*16), seed[2], 255})
		}
	}
	var b bytes.Buffer
	if err := encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// encodeJPEG is jpeg.Encode with the default options.
func encodeJPEG(w io.Writer, img image.Image) error { return jpeg.Encode(w, img, nil) }

// sha1Hex is the SHA-1 of b in hex, as XEP-0084 and XEP-0153 name images.
func sha1Hex(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}
