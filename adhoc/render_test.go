package adhoc

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/form"
)

// TestAppendFormRendersAsMellium: the reply path's form renderer writes,
// byte for byte, what mellium's Data.TokenReader writes for the same form —
// every field type, options, invalid and extra defaults, multi-line titles
// and instructions — with only the type attribute changed when asked.
func TestAppendFormRendersAsMellium(t *testing.T) {
	forms := map[string]*form.Data{
		"empty": form.New(),
		"everything": form.New(
			form.Title("A title\r\nover\nthree\rlines"),
			form.Instructions("first\n\nsecond\r\nthird\n"),
			form.Hidden("FORM_TYPE", form.Value("urn:x")),
			form.Fixed(form.Value("a section")),
			form.Boolean("b1", form.Value("1"), form.Required),
			form.Boolean("b2", form.Value("maybe")),
			form.Text("t", form.Label("Name"), form.Desc("who <you> are & why"), form.Value(""), form.Value("x"), form.Value("y")),
			form.TextMulti("tm", form.Value("l1"), form.Value(""), form.Value("l2")),
			form.TextPrivate("pw", form.Value("secret")),
			form.JID("j1", form.Value("not a jid@@")),
			form.JID("j2", form.Value("alice@example.org/r")),
			form.JIDMulti("jm", form.Value("a@b"), form.Value("@bad"), form.Value("c@d")),
			form.List("l", form.ListItem("One", "1"), form.ListItem("Two", "2"), form.Value("2")),
			form.ListMulti("lm", form.ListItem("", "x"), form.Value("x"), form.Value("z")),
		),
	}
	for name, d := range forms {
		want := encode(t, d.TokenReader())
		if got := encode(t, &tokens{toks: appendForm(nil, d, form.TypeForm, nil)}); got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
		wantResult := strings.Replace(want, `type="form"`, `type="result"`, 1)
		if got := encode(t, &tokens{toks: appendForm(nil, d, form.TypeResult, nil)}); got != wantResult {
			t.Errorf("%s as result:\n got %s\nwant %s", name, got, wantResult)
		}
	}
}

// TestAppendFormEarlierAnswers: answers replace the defaults of the fields
// they name, in place of the <value/> elements, before the options; a
// private field is never echoed.
func TestAppendFormEarlierAnswers(t *testing.T) {
	d := form.New(
		form.Text("name", form.Value("default"), form.Required),
		form.TextPrivate("pw"),
		form.List("color", form.ListItem("Red", "red"), form.Value("red")),
	)
	got := encode(t, &tokens{toks: appendForm(nil, d, form.TypeForm, Values{"name": {"Ann"}, "pw": {"hunter2"}, "color": {"blue"}})})
	want := `<x xmlns="jabber:x:data" type="form">` +
		`<field type="text-single" var="name"><required></required><value>Ann</value></field>` +
		`<field type="text-private" var="pw"></field>` +
		`<field type="list-single" var="color"><value>blue</value><option label="Red"><value>red</value></option></field></x>`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func encode(t *testing.T, r xml.TokenReader) string {
	t.Helper()
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, r); err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
