package adhoc_test

import (
	"reflect"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/adhoc"
)

type announcement struct {
	Subject string    `adhoc:"subject"`
	Body    []string  `adhoc:"body"`
	Urgent  bool      `adhoc:"urgent"`
	Max     int       `adhoc:"max_items"`
	To      jid.JID   `adhoc:"accountjid"`
	Many    []jid.JID `adhoc:"accountjids"`
	Ignored string
}

func TestValuesRoundTrip(t *testing.T) {
	in := announcement{Subject: "s", Body: []string{"a", "b"}, Urgent: true, Max: 25,
		To: jid.MustParse("a@localhost"), Many: []jid.JID{jid.MustParse("b@localhost"), jid.MustParse("c@localhost")}, Ignored: "x"}
	v, err := adhoc.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if v.Get("urgent") != "1" || v.Get("max_items") != "25" || len(v["accountjids"]) != 2 || v["Ignored"] != nil {
		t.Fatalf("encoded %v", v)
	}
	var out announcement
	if err := v.Decode(&out); err != nil {
		t.Fatal(err)
	}
	in.Ignored = ""
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip:\n%+v\n%+v", in, out)
	}
	var pe *adhoc.PayloadError
	err = adhoc.Values{"max_items": {"lots"}}.Decode(&out)
	if !asPayload(err, &pe) || pe.Field != "max_items" {
		t.Fatalf("bad number: %v", err)
	}
	err = adhoc.Values{"accountjid": {"a@b@c"}}.Decode(&out)
	if !asPayload(err, &pe) || pe.Field != "accountjid" {
		t.Fatalf("bad JID: %v", err)
	}
}

func asPayload(err error, pe **adhoc.PayloadError) bool {
	p, ok := err.(*adhoc.PayloadError)
	*pe = p
	return ok
}
