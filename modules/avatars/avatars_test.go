package avatars_test

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/adhocd/adhocd/servertest"
	"github.com/adhocd/adhocd/storage"
)

// XEP-0398 over TCP with raw clients.

const pubsub = `http://jabber.org/protocol/pubsub`

func sha(b []byte) string {
	s := sha1.Sum(b)
	return hex.EncodeToString(s[:])
}

// publish publishes payload as item id of node, from c.
func publish(t *testing.T, c *servertest.IQClient, node, id, payload string) {
	t.Helper()
	if r := c.IQ("set", "", `<pubsub xmlns='`+pubsub+`'><publish node='`+node+`'><item id='`+id+`'>`+payload+`</item></publish></pubsub>`); r.Type != "result" {
		t.Fatalf("publish to %s: %s", node, r.XML)
	}
}

// TestAvatarConversion: a vCard photo becomes XEP-0084 data and metadata;
// the account's presence carries its hash (XEP-0153) unless the client put
// a photo there itself; a XEP-0084 avatar becomes the vCard's PHOTO, the
// rest of the vCard kept; empty metadata removes it, and the hash goes
// from presence.
func TestAvatarConversion(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("juliet", "pw")
	srv.AddUser("romeo", "pw")
	srv.Befriend("juliet", "romeo")
	juliet := servertest.IQLogin(t, srv, "juliet", "pw")
	romeo := srv.RawLogin("romeo", "pw", "garden")
	romeo.Write(`<presence/>`)
	romeo.Expect(`<presence`)

	if d := juliet.IQ("get", "juliet@localhost", `<query xmlns='http://jabber.org/protocol/disco#info'/>`); !strings.Contains(d.XML, `var="urn:xmpp:pep-vcard-conversion:0"`) {
		t.Errorf("account disco#info lacks urn:xmpp:pep-vcard-conversion:0: %s", d.XML)
	}

	// vCard to PEP (§3.2).
	img := []byte("\x89PNG\r\n\x1a\n a small image of juliet")
	b64 := base64.StdEncoding.EncodeToString(img)
	id := sha(img)
	if r := juliet.IQ("set", "", `<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>`+
		b64[:10]+"\n  "+b64[10:]+`</BINVAL></PHOTO></vCard>`); r.Type != "result" {
		t.Fatalf("vCard set: %s", r.XML)
	}
	meta := juliet.IQ("get", "", `<pubsub xmlns='`+pubsub+`'><items node='urn:xmpp:avatar:metadata'/></pubsub>`)
	if want := `<item id="` + id + `"><metadata xmlns="urn:xmpp:avatar:metadata"><info id="` + id + `" bytes="` + strconv.Itoa(len(img)) + `" type="image/png"/></metadata></item>`; !strings.Contains(meta.XML, want) {
		t.Errorf("avatar metadata after the vCard set:\n got %s\nwant %s", meta.XML, want)
	}
	data := juliet.IQ("get", "", `<pubsub xmlns='`+pubsub+`'><items node='urn:xmpp:avatar:data'/></pubsub>`)
	if want := `<item id="` + id + `"><data xmlns="urn:xmpp:avatar:data">` + b64 + `</data></item>`; !strings.Contains(data.XML, want) {
		t.Errorf("avatar data after the vCard set:\n got %s\nwant %s", data.XML, want)
	}

	// Presence (§4): the hash is added; a client's own photo stays.
	juliet.Write(`<presence><show>away</show></presence>`)
	got, ok := romeo.ReadUntil(`<presence[^>]*from="juliet@localhost/r"[^>]*>.*?</presence>`, 5*time.Second)
	if !ok || !strings.Contains(got, `<x xmlns="vcard-temp:x:update"><photo>`+id+`</photo></x>`) {
		t.Errorf("romeo got juliet's presence without her avatar hash: %s", got)
	}
	juliet.Write(`<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>`)
	got, ok = romeo.ReadUntil(`<presence[^>]*from="juliet@localhost/r"[^>]*>.*?</presence>`, 5*time.Second)
	if !ok || strings.Contains(got, id) || !strings.Contains(got, `<photo`) {
		t.Errorf("juliet's empty photo was not left alone: %s", got)
	}

	// PEP to vCard (§3.1): a new avatar, data then metadata.
	img2 := []byte("\x89PNG\r\n\x1a\n another picture")
	b642, id2 := base64.StdEncoding.EncodeToString(img2), sha(img2)
	publish(t, juliet, "urn:xmpp:avatar:data", id2, `<data xmlns='urn:xmpp:avatar:data'>`+b642+`</data>`)
	publish(t, juliet, "urn:xmpp:avatar:metadata", id2, `<metadata xmlns='urn:xmpp:avatar:metadata'>`+
		`<info id='`+id2+`' bytes='`+strconv.Itoa(len(img2))+`' type='image/webp'/>`+
		`<info id='0123' url='https://example.org/a.png' bytes='1' type='image/png'/></metadata>`)
	vc := juliet.IQ("get", "", `<vCard xmlns='vcard-temp'/>`)
	want := servertest.CanonOf(t, `<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN><PHOTO><TYPE>image/webp</TYPE><BINVAL>`+b642+`</BINVAL></PHOTO></vCard>`)
	if vc.PayloadCanon() != want {
		t.Errorf("vCard after the XEP-0084 publish:\n got %s\nwant %s", vc.PayloadCanon(), want)
	}
	juliet.Write(`<presence/>`)
	got, ok = romeo.ReadUntil(`<presence[^>]*from="juliet@localhost/r"[^>]*>.*?</presence>`, 5*time.Second)
	if !ok || !strings.Contains(got, `<photo>`+id2+`</photo>`) {
		t.Errorf("presence after the XEP-0084 publish lacks the new hash: %s", got)
	}

	// Avatar off (XEP-0084 §4.2).
	publish(t, juliet, "urn:xmpp:avatar:metadata", "off", `<metadata xmlns='urn:xmpp:avatar:metadata'/>`)
	vc = juliet.IQ("get", "", `<vCard xmlns='vcard-temp'/>`)
	if want := servertest.CanonOf(t, `<vCard xmlns='vcard-temp'><FN>Juliet Capulet</FN></vCard>`); vc.PayloadCanon() != want {
		t.Errorf("vCard after empty metadata:\n got %s\nwant %s", vc.PayloadCanon(), want)
	}
	juliet.Write(`<presence/>`)
	got, ok = romeo.ReadUntil(`<presence[^>]*from="juliet@localhost/r"[^>]*(/>|>.*?</presence>)`, 5*time.Second)
	if !ok || strings.Contains(got, "vcard-temp:x:update") {
		t.Errorf("presence without an avatar carries a hash: %s", got)
	}
}

// TestAvatarHashFromStoredVCard: an account whose vCard had a photo
// before the conversion existed (nothing in PEP) gets its hash in
// presence, computed from the vCard.
func TestAvatarHashFromStoredVCard(t *testing.T) {
	srv := servertest.Start(t)
	srv.AddUser("juliet", "pw")
	srv.AddUser("romeo", "pw")
	srv.Befriend("juliet", "romeo")
	img := []byte("an old photo")
	err := srv.Store().UpdateUserData(context.Background(), "juliet", "vcard", "vcard", func([]storage.Datum) ([]storage.Datum, error) {
		return []storage.Datum{{Key: "vcard", Value: []byte(`<vCard xmlns="vcard-temp"><PHOTO><TYPE>image/jpeg</TYPE><BINVAL>` + base64.StdEncoding.EncodeToString(img) + `</BINVAL></PHOTO></vCard>`)}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	romeo := srv.RawLogin("romeo", "pw", "garden")
	romeo.Write(`<presence/>`)
	romeo.Expect(`<presence`)
	juliet := srv.RawLogin("juliet", "pw", "balcony")
	juliet.Write(`<presence/>`)
	got, ok := romeo.ReadUntil(`<presence[^>]*from="juliet@localhost/balcony"[^>]*>.*?</presence>`, 5*time.Second)
	if !ok || !strings.Contains(got, `<photo>`+sha(img)+`</photo>`) {
		t.Errorf("presence lacks the hash of the stored vCard photo: %s", got)
	}
}
