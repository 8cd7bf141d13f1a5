package adhoc

// Fuzz targets for what a requester submits.
//
//   - FuzzValidate feeds arbitrary values to validate against a fixed form
//     holding every field type. Accepted values satisfy the form's rules
//     (required, single or multiple, options, canonical JIDs, booleans as 1
//     or 0, a hidden field's fixed value, only the form's fields), come from
//     what was submitted, validate again to themselves and decode into typed
//     fields; a rejection is a *PayloadError naming a field whose submission
//     breaks a rule.
//   - FuzzCommand feeds an arbitrary <command/> element (with its data form)
//     to Provider.Handle, on a fresh session of a three-stage command brought
//     to a given stage ($SID in the input is that session's id). Handle never
//     panics; it answers a response that encodes to well-formed XML (a
//     <command/> with a known status, the stage's form, no secret echoed) or
//     an adhoc.Error with an XEP-0050 or RFC 6120 condition that renders as a
//     well-formed IQ error; bad-payload is returned exactly when the form in
//     the payload does not validate against the stage's form; values accepted
//     by a stage satisfy its rules and are shown back after prev; and another
//     requester never continues the session.
//
// This file is in package adhoc (for validate and submitted), so it cannot
// import adhoctest: the command is defined here.

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/canonjid"
)

const (
	fuzzFormType = "urn:adhocd:fuzz"
	fuzzNode     = "urn:adhocd:fuzz:wizard"
)

// fuzzAllFields is a form with every field type, required and optional.
func fuzzAllFields() *form.Data {
	return form.New(
		form.Title("Every field"),
		form.Hidden("FORM_TYPE", form.Value(fuzzFormType)),
		form.Fixed(form.Value("Some fixed text")),
		form.Text("name", form.Required),
		form.Text("nick"),
		form.TextPrivate("secret"),
		form.TextMulti("comment"),
		form.TextMulti("lines", form.Required),
		form.Boolean("notify"),
		form.Boolean("agree", form.Required),
		form.List("color", form.Required, form.ListItem("Red", "red"), form.ListItem("Green", "green"), form.ListItem("Blue", "blue")),
		form.List("free"),
		form.ListMulti("tags", form.ListItem("A", "a"), form.ListItem("B", "b"), form.ListItem("C", "c")),
		form.JID("contact", form.Required),
		form.JIDMulti("others"),
		form.Hidden("token"),
	)
}

// fuzzFieldDefault returns the value a form definition gives a field.
func fuzzFieldDefault(def *form.Data, name string) []string {
	v, _ := def.Raw(name)
	return v
}

// fuzzSingleValued reports whether a field type takes one value.
func fuzzSingleValued(t form.FieldType) bool {
	switch t {
	case form.TypeJIDMulti, form.TypeListMulti, form.TypeTextMulti:
		return false
	}
	return true
}

// fuzzFieldOK states a field's rules (XEP-0004 §3.3 and the engine's doc):
// whether the submitted vals (present or not) are acceptable for f.
func fuzzFieldOK(def *form.Data, f form.FieldData, vals []string) bool {
	given := vals
	if f.Type != form.TypeTextMulti {
		given = nil
		for _, v := range vals {
			if strings.TrimSpace(v) != "" {
				given = append(given, v)
			}
		}
	}
	if len(given) == 0 {
		return !f.Required
	}
	if fuzzSingleValued(f.Type) && len(given) > 1 {
		return false
	}
	switch f.Type {
	case form.TypeBoolean:
		return slices.Contains([]string{"0", "1", "false", "true"}, strings.TrimSpace(given[0]))
	case form.TypeJID, form.TypeJIDMulti:
		// A JID valid as adhocd reads JIDs: canonjid refuses what mellium's
		// one-pass normalisation turns into an invalid JID ("..", read as
		// the empty domain ".").
		for _, v := range given {
			if _, err := canonjid.Parse(strings.TrimSpace(v)); err != nil {
				return false
			}
		}
	case form.TypeList, form.TypeListMulti:
		opts, _ := def.GetOptions(f.Var)
		for _, v := range given {
			if len(opts) > 0 && !slices.ContainsFunc(opts, func(o form.FieldOpt) bool { return o.Value == v }) {
				return false
			}
		}
	case form.TypeHidden:
		if want := fuzzFieldDefault(def, f.Var); len(want) > 0 && want[0] != "" && given[0] != want[0] {
			return false
		}
	}
	return true
}

// fuzzCheckAccepted checks values a form accepted. got, when not nil, is what was
// submitted: every accepted value must come from it.
func fuzzCheckAccepted(def *form.Data, got, out Values) error {
	fields := map[string]form.FieldData{}
	def.ForFields(func(f form.FieldData) {
		if f.Var != "" && f.Type != form.TypeFixed {
			fields[f.Var] = f
		}
	})
	for k := range out {
		if _, ok := fields[k]; !ok {
			return fmt.Errorf("accepted %q, not a field of the form", k)
		}
	}
	for name, f := range fields {
		vals, present := out[name]
		if got != nil {
			if _, submitted := got[name]; present != submitted {
				return fmt.Errorf("field %q: present %v in the values, submitted %v", name, present, submitted)
			}
		}
		if f.Required && len(vals) == 0 {
			return fmt.Errorf("required field %q accepted without a value", name)
		}
		if fuzzSingleValued(f.Type) && len(vals) > 1 {
			return fmt.Errorf("single-valued field %q accepted with %d values", name, len(vals))
		}
		if f.Type != form.TypeTextMulti {
			for _, v := range vals {
				if strings.TrimSpace(v) == "" {
					return fmt.Errorf("field %q accepted the blank value %q", name, v)
				}
			}
		}
		from := func(v string, same func(in string) bool) error {
			if got == nil || slices.ContainsFunc(got[name], same) {
				return nil
			}
			return fmt.Errorf("field %q: accepted %q, not submitted (%q)", name, v, got[name])
		}
		for i, v := range vals {
			if !fuzzSingleValued(f.Type) && slices.Contains(vals[:i], v) && f.Type != form.TypeTextMulti {
				return fmt.Errorf("field %q: %q accepted twice", name, v)
			}
			switch f.Type {
			case form.TypeBoolean:
				if v != "0" && v != "1" {
					return fmt.Errorf("boolean %q accepted as %q, not 0 or 1", name, v)
				}
				err := from(v, func(in string) bool {
					in = strings.TrimSpace(in)
					return (v == "1" && (in == "1" || in == "true")) || (v == "0" && (in == "0" || in == "false"))
				})
				if err != nil {
					return err
				}
			case form.TypeJID, form.TypeJIDMulti:
				j, err := jid.Parse(v)
				if err != nil {
					return fmt.Errorf("field %q: accepted %q, not a JID: %v", name, v, err)
				}
				if j.String() != v {
					return fmt.Errorf("field %q: accepted %q, not in canonical form %q", name, v, j.String())
				}
				err = from(v, func(in string) bool {
					k, err := canonjid.Parse(strings.TrimSpace(in))
					return err == nil && k.String() == v
				})
				if err != nil {
					return err
				}
			case form.TypeList, form.TypeListMulti:
				opts, _ := def.GetOptions(name)
				if len(opts) > 0 && !slices.ContainsFunc(opts, func(o form.FieldOpt) bool { return o.Value == v }) {
					return fmt.Errorf("list %q accepted %q, not an option", name, v)
				}
				if err := from(v, func(in string) bool { return in == v }); err != nil {
					return err
				}
			case form.TypeHidden:
				if want := fuzzFieldDefault(def, name); len(want) > 0 && want[0] != "" && v != want[0] {
					return fmt.Errorf("hidden %q accepted %q, not its value %q", name, v, want[0])
				}
				if err := from(v, func(in string) bool { return in == v }); err != nil {
					return err
				}
			default:
				if err := from(v, func(in string) bool { return in == v }); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// fuzzTyped is fuzzAllFields as a struct, for Values.Decode.
type fuzzTyped struct {
	FormType string    `adhoc:"FORM_TYPE"`
	Name     string    `adhoc:"name"`
	Nick     string    `adhoc:"nick"`
	Secret   string    `adhoc:"secret"`
	Comment  []string  `adhoc:"comment"`
	Lines    []string  `adhoc:"lines"`
	Notify   bool      `adhoc:"notify"`
	Agree    bool      `adhoc:"agree"`
	Color    string    `adhoc:"color"`
	Free     string    `adhoc:"free"`
	Tags     []string  `adhoc:"tags"`
	Contact  jid.JID   `adhoc:"contact"`
	Others   []jid.JID `adhoc:"others"`
	Token    string    `adhoc:"token"`
}

// fuzzParseValues reads "var=value" and "var" (present, no value) entries
// separated by NUL.
func fuzzParseValues(data []byte) Values {
	got := Values{}
	for _, e := range bytes.Split(data, []byte{0}) {
		k, v, ok := strings.Cut(string(e), "=")
		if !ok {
			if _, seen := got[k]; !seen {
				got[k] = nil
			}
			continue
		}
		got[k] = append(got[k], v)
	}
	return got
}

func fuzzValues(entries ...string) []byte { return []byte(strings.Join(entries, "\x00")) }

func FuzzValidate(f *testing.F) {
	valid := []string{"FORM_TYPE=" + fuzzFormType, "name=Alice", "lines=", "agree=true", "color=red", "contact=bob@example.org"}
	f.Add(fuzzValues(valid...))
	f.Add(fuzzValues(append(valid, "nick=al", "secret=s3cret", "comment=one", "comment=", "comment=three", "notify=0",
		"free=anything", "tags=a", "tags=c", "tags=a", "others=Carol@Example.org", "others=carol@example.org/Phone", "token=x")...))
	f.Add(fuzzValues(append(valid, "unknown=1", "another", "=", "=x")...))
	f.Add(fuzzValues("name= ", "lines", "agree=yes", "color=Red", "contact=@"))
	f.Add(fuzzValues("name=a", "name=b", "lines=x", "agree=1", "agree=0", "color=red", "color=blue", "contact=a@b", "contact=c@d"))
	f.Add(fuzzValues("FORM_TYPE=urn:other", "name=x", "lines=x", "agree= false ", "color= red", "contact= ALICE@LOCALHOST/Res "))
	f.Add(fuzzValues("name=x", "lines=x", "agree=1", "color=green", "contact=x@y", "others=a@b", "others=", "others=@", "tags=d"))
	f.Add(fuzzValues("name=\u212bngstr\u00f6m", "lines=x", "agree=1", "color=blue", "contact=\u00c5@\u212b.example/\u0301", "secret=\t"))
	f.Add(fuzzValues("name=x", "lines=x", "agree=1", "color=blue", "contact=localhost", "FORM_TYPE", "FORM_TYPE="+fuzzFormType))
	f.Add([]byte{})
	def := fuzzAllFields()
	var fields []form.FieldData
	def.ForFields(func(fd form.FieldData) {
		if fd.Var != "" && fd.Type != form.TypeFixed {
			fields = append(fields, fd)
		}
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		got := fuzzParseValues(data)
		out, err := validate(def, got)
		if err != nil {
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("validate returned %T %v, not a *PayloadError", err, err)
			}
			i := slices.IndexFunc(fields, func(fd form.FieldData) bool { return fd.Var == pe.Field })
			if i < 0 {
				t.Fatalf("%v: names no field of the form", err)
			}
			if fuzzFieldOK(def, fields[i], got[pe.Field]) {
				t.Fatalf("%v: but %q is a valid submission for the %s field", err, got[pe.Field], fields[i].Type)
			}
			return
		}
		for _, fd := range fields {
			if !fuzzFieldOK(def, fd, got[fd.Var]) {
				t.Fatalf("accepted %q for the %s field %q, which breaks its rules", got[fd.Var], fd.Type, fd.Var)
			}
		}
		if err := fuzzCheckAccepted(def, got, out); err != nil {
			t.Fatalf("%v\nsubmitted %q\naccepted %q", err, got, out)
		}
		again, err := validate(def, out)
		if err != nil {
			t.Fatalf("accepted values %q do not validate again: %v", out, err)
		}
		if !fuzzSameValues(out, again) {
			t.Fatalf("validation is not idempotent: %q then %q", out, again)
		}
		var v fuzzTyped
		if err := out.Decode(&v); err != nil {
			t.Fatalf("accepted values %q do not decode: %v", out, err)
		}
	})
}

func fuzzSameValues(a, b Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !slices.Equal(v, w) {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------------------
// FuzzCommand

var fuzzResponder = jid.MustParse("localhost")

// fuzzStages are the forms of the three stages.
var fuzzStages = []func() *form.Data{
	func() *form.Data {
		return form.New(
			form.Title("Who are you?"),
			form.Hidden("FORM_TYPE", form.Value(fuzzFormType)),
			form.Fixed(form.Value("Tell us")),
			form.Text("name", form.Required),
			form.List("color", form.Required, form.ListItem("Red", "red"), form.ListItem("Green", "green"), form.ListItem("Blue", "blue")),
			form.Boolean("notify"),
		)
	},
	func() *form.Data {
		return form.New(
			form.Title("Whom do you know?"),
			form.JID("contact", form.Required),
			form.JIDMulti("others"),
			form.ListMulti("tags", form.ListItem("A", "a"), form.ListItem("B", "b")),
			form.TextPrivate("secret", form.Required),
		)
	},
	func() *form.Data {
		return form.New(
			form.Title("Anything else?"),
			form.TextMulti("comment"),
			form.Text("nick"),
		)
	},
}

// fuzzStageInput is a valid submission for each stage.
var fuzzStageInput = []string{
	`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>` + fuzzFormType + `</value></field><field var='name'><value>Alice</value></field><field var='color'><value>green</value></field><field var='notify'><value>true</value></field></x>`,
	`<x xmlns='jabber:x:data' type='submit'><field var='contact'><value>Bob@Example.org</value></field><field var='others'><value>carol@example.org</value><value>dave@example.org</value></field><field var='tags'><value>b</value></field><field var='secret'><value>hunter2</value></field></x>`,
	`<x xmlns='jabber:x:data' type='submit'><field var='comment'><value>line one</value><value>line two</value></field></x>`,
}

// fuzzAccepted records what the stages' Check functions were given.
type fuzzAccepted struct {
	stage int
	vals  Values
}

// fuzzRun is the input being run: one provider serves a whole fuzz run (a
// MemoryStore starts goroutines that never end), each input as another
// requester.
type fuzzRun struct {
	t    *testing.T
	seen []fuzzAccepted
}

// fuzzCommand is the command: three stages, complete allowed from the
// second; each stage's Check records and checks what the stage accepted.
func fuzzCommand(cur **fuzzRun) Command {
	var stages []Stage
	for i, mk := range fuzzStages {
		stages = append(stages, Stage{
			Form: func(context.Context, *Request) (*form.Data, error) { return mk(), nil },
			Check: func(_ context.Context, r *Request) error {
				def := mk()
				mine := Values{}
				def.ForFields(func(f form.FieldData) {
					if v, ok := r.Values[f.Var]; ok {
						mine[f.Var] = v
					}
				})
				run := *cur
				if err := fuzzCheckAccepted(def, nil, mine); err != nil {
					run.t.Errorf("stage %d accepted %q: %v", i, mine, err)
				}
				run.seen = append(run.seen, fuzzAccepted{stage: i, vals: mine})
				return nil
			},
			AllowComplete: i == 1,
		})
	}
	return Command{
		Node:      fuzzNode,
		Name:      "Fuzz wizard",
		Allow:     Anyone(),
		Languages: []string{"en", "fr"},
		Stages:    stages,
		Complete: func(_ context.Context, r *Request) (*Result, error) {
			return &Result{Notes: []Note{{Type: NoteInfo, Text: "done " + r.Values.Get("name")}}}, nil
		},
	}
}

// XEP-0050 §4.6 conditions and the stanza conditions of RFC 6120 §8.3.3.
var (
	fuzzCommandConditions = map[string]bool{"malformed-action": true, "bad-action": true, "bad-locale": true,
		"bad-payload": true, "bad-sessionid": true, "session-expired": true}
	fuzzStanzaConditions = map[string]bool{"bad-request": true, "conflict": true, "feature-not-implemented": true,
		"forbidden": true, "gone": true, "internal-server-error": true, "item-not-found": true,
		"jid-malformed": true, "not-acceptable": true, "not-allowed": true, "not-authorized": true,
		"policy-violation": true, "recipient-unavailable": true, "redirect": true,
		"registration-required": true, "remote-server-not-found": true, "remote-server-timeout": true,
		"resource-constraint": true, "service-unavailable": true, "subscription-required": true,
		"undefined-condition": true, "unexpected-request": true}
)

// fuzzResponse is a <command/> response as a requester reads it.
type fuzzResponse struct {
	XMLName   xml.Name
	Node      string `xml:"node,attr"`
	SessionID string `xml:"sessionid,attr"`
	Status    string `xml:"status,attr"`
	Actions   *struct {
		Execute string `xml:"execute,attr"`
	} `xml:"http://jabber.org/protocol/commands actions"`
	Forms []struct {
		Type   string `xml:"type,attr"`
		Fields []struct {
			Var    string   `xml:"var,attr"`
			Type   string   `xml:"type,attr"`
			Values []string `xml:"value"`
		} `xml:"field"`
	} `xml:"jabber:x:data x"`
}

// fuzzEncode renders a token stream to XML text.
func fuzzEncode(r xml.TokenReader) ([]byte, error) {
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if _, err := xmlstream.Copy(e, r); err != nil {
		return nil, err
	}
	if err := e.Flush(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fuzzWellFormed parses b strictly to the end.
func fuzzWellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// fuzzParseCommand reads the first element of b as a command's start element and
// content, as the server hands them to the provider. ok is false when b is
// not well-formed there.
func fuzzParseCommand(b []byte) (start xml.StartElement, payload []xml.Token, ok bool) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	for {
		tok, err := d.Token()
		if err != nil {
			return start, nil, false
		}
		if st, isStart := tok.(xml.StartElement); isStart {
			start = st.Copy()
			break
		}
	}
	depth := 0
	for {
		tok, err := d.Token()
		if err != nil {
			return start, nil, false
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			if depth == 0 {
				return start, payload, true
			}
			depth--
		case xml.Comment, xml.ProcInst, xml.Directive:
			continue // the server refuses these (restricted XML)
		}
		payload = append(payload, xml.CopyToken(tok))
	}
}

// fuzzRequest runs one request; it checks what Handle returns and renders it.
func fuzzRequest(t *testing.T, p *Provider, from jid.JID, start xml.StartElement, payload []xml.Token) (*fuzzResponse, error) {
	t.Helper()
	iq := stanza.IQ{ID: "q", Type: stanza.SetIQ, From: from, To: fuzzResponder}
	resp, err := p.Handle(context.Background(), iq, start, payload)
	if err != nil {
		var e Error
		if !errors.As(err, &e) {
			t.Fatalf("Handle returned %T %v, not an adhoc.Error (it would be an internal-server-error)", err, err)
		}
		cond := Condition(err)
		if !fuzzCommandConditions[cond] && !fuzzStanzaConditions[cond] {
			t.Fatalf("condition %q is neither XEP-0050's nor RFC 6120's", cond)
		}
		if cond == string(stanza.InternalServerError) {
			t.Fatalf("internal-server-error: %v", err)
		}
		if e.Specific != "" && !fuzzCommandConditions[e.Specific] {
			t.Fatalf("specific condition %q is not XEP-0050's", e.Specific)
		}
		var b bytes.Buffer
		enc := xml.NewEncoder(&b)
		if err := p.reply(enc, iq, nil, err); err != nil {
			t.Fatalf("rendering the error: %v", err)
		}
		if err := enc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := fuzzWellFormed(b.Bytes()); err != nil {
			t.Fatalf("the error renders to XML that is not well-formed: %v\n%s", err, b.String())
		}
		return nil, err
	}
	if resp == nil {
		t.Fatal("Handle returned neither a response nor an error")
	}
	out, err := fuzzEncode(resp)
	if err != nil {
		t.Fatalf("the response does not encode: %v", err)
	}
	if err := fuzzWellFormed(out); err != nil {
		t.Fatalf("the response is not well-formed XML: %v\n%s", err, out)
	}
	var r fuzzResponse
	if err := xml.Unmarshal(out, &r); err != nil {
		t.Fatalf("the response does not decode: %v\n%s", err, out)
	}
	if r.XMLName != (xml.Name{Space: NS, Local: "command"}) || r.Node != fuzzNode || r.SessionID == "" {
		t.Fatalf("the response is not a <command/> of %s with a session id:\n%s", fuzzNode, out)
	}
	switch r.Status {
	case string(Executing):
		if len(r.Forms) != 1 || r.Forms[0].Type != "form" {
			t.Fatalf("an executing response carries %d forms, want the stage's form:\n%s", len(r.Forms), out)
		}
		if r.Actions == nil || (r.Actions.Execute != string(Next) && r.Actions.Execute != string(Complete)) {
			t.Fatalf("an executing response without actions to go on:\n%s", out)
		}
		for _, fl := range r.Forms[0].Fields {
			if fl.Type == string(form.TypeTextPrivate) && len(fl.Values) > 0 {
				t.Fatalf("the private field %q is echoed:\n%s", fl.Var, out)
			}
		}
	case string(Completed), string(Canceled):
	default:
		t.Fatalf("status %q:\n%s", r.Status, out)
	}
	return &r, nil
}

func fuzzStart(attrs ...string) xml.StartElement {
	st := xml.StartElement{Name: xml.Name{Space: NS, Local: "command"}}
	for i := 0; i+1 < len(attrs); i += 2 {
		st.Attr = append(st.Attr, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
	}
	return st
}

func fuzzTokens(t *testing.T, s string) []xml.Token {
	t.Helper()
	_, toks, ok := fuzzParseCommand([]byte("<c>" + s + "</c>"))
	if !ok {
		t.Fatalf("bad fixture %q", s)
	}
	return toks
}

func FuzzCommand(f *testing.F) {
	cmd := func(attrs, payload string) []byte {
		return []byte(`<command xmlns='http://jabber.org/protocol/commands' node='` + fuzzNode + `' sessionid='$SID'` + attrs + `>` + payload + `</command>`)
	}
	for stage := range uint8(3) {
		f.Add(stage, cmd(` action='next'`, fuzzStageInput[stage]))
		f.Add(stage, cmd(` action='complete'`, fuzzStageInput[stage]))
		f.Add(stage, cmd(``, fuzzStageInput[stage]))
		f.Add(stage, cmd(` action='execute'`, fuzzStageInput[stage]))
		f.Add(stage, cmd(` action='prev'`, ``))
		f.Add(stage, cmd(` action='cancel'`, ``))
		f.Add(stage|0x80, cmd(` action='next'`, fuzzStageInput[stage]))
	}
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='submit'><field var='name'><value>Alice</value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='name'><value>Alice</value><value>Bob</value></field><field var='color'><value>purple</value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:other</value></field><field var='name'><value>A</value></field><field var='color'><value>red</value></field><field var='notify'><value>maybe</value></field></x>`,
		`<x xmlns='jabber:x:data' type='form'><field var='name'><value>A</value></field><field var='color'><value>red</value></field></x>`,
		`<x xmlns='jabber:x:data' type='cancel'/>`,
		`<x xmlns='jabber:x:data'><field var='name'><value>A</value></field><field var='name'><value>B</value></field><field var='color'><value>blue</value></field><field><value>orphan</value></field></x>`,
		`<note xmlns='http://jabber.org/protocol/commands'>hi</note><x xmlns='jabber:x:data' type='submit'><field var='name'><value>A</value><value/></field><field var='color'><value>red</value></field><field var='extra'><value>x</value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='name'><value><b>nested</b>A</value></field><field var='color'><value> red</value></field></x>`,
		`<x xmlns='urn:not-a-form'><field var='name'><value>A</value></field></x>`,
	} {
		f.Add(uint8(0), cmd(` action='next'`, s))
	}
	for _, s := range []string{
		`<x xmlns='jabber:x:data' type='submit'><field var='contact'><value>@example.org</value></field><field var='secret'><value>x</value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='contact'><value> ALICE@EXAMPLE.ORG/Res </value></field><field var='others'><value>a@b</value><value>A@B</value><value>a@b/c</value></field><field var='tags'><value>a</value><value>z</value></field><field var='secret'><value>  </value></field></x>`,
		`<x xmlns='jabber:x:data' type='submit'><field var='contact'><value>a@b</value><value>c@d</value></field><field var='secret'><value>s</value></field></x>`,
	} {
		f.Add(uint8(1), cmd(` action='next'`, s))
		f.Add(uint8(1), cmd(` action='complete'`, s))
	}
	f.Add(uint8(0), []byte(`<command xmlns='http://jabber.org/protocol/commands' node='`+fuzzNode+`'/>`))
	f.Add(uint8(0), []byte(`<command xmlns='http://jabber.org/protocol/commands' node='`+fuzzNode+`' xml:lang='fr-CA' action='execute'/>`))
	f.Add(uint8(0), []byte(`<command xmlns='http://jabber.org/protocol/commands' node='`+fuzzNode+`' xml:lang='de'/>`))
	f.Add(uint8(0), []byte(`<command xmlns='http://jabber.org/protocol/commands' node='`+fuzzNode+`' action='next'/>`))
	f.Add(uint8(0), []byte(`<command xmlns='http://jabber.org/protocol/commands' node='urn:nowhere'/>`))
	f.Add(uint8(0), []byte(`<command xmlns='http://jabber.org/protocol/commands'/>`))
	f.Add(uint8(1), cmd(` action='bogus'`, ``))
	f.Add(uint8(1), []byte(`<command xmlns='http://jabber.org/protocol/commands' node='`+fuzzNode+`' sessionid='aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' action='next'/>`))
	f.Add(uint8(2), []byte(`<command xmlns='http://jabber.org/protocol/commands' node='`+fuzzNode+`' sessionid='$SIDx' action='complete'/>`))

	var cur *fuzzRun
	p := NewProvider(WithLogger(slog.New(slog.DiscardHandler)))
	if err := p.AddCommand(fuzzResponder, fuzzCommand(&cur)); err != nil {
		f.Fatal(err)
	}
	n := 0
	f.Fuzz(func(t *testing.T, stage uint8, raw []byte) {
		n++
		cur = &fuzzRun{t: t}
		fuzzRequester := jid.MustParse(fmt.Sprintf("user%d@localhost/phone", n))
		fuzzOther := jid.MustParse(fmt.Sprintf("other%d@localhost/phone", n))
		// A session at the chosen stage.
		r, err := fuzzRequest(t, p, fuzzRequester, fuzzStart("node", fuzzNode), nil)
		if err != nil {
			t.Fatalf("execute: %v", err)
		}
		sid := r.SessionID
		at := int(stage&0x7f) % len(fuzzStages)
		for i := 0; i < at; i++ {
			if _, err := fuzzRequest(t, p, fuzzRequester, fuzzStart("node", fuzzNode, "sessionid", sid, "action", "next"), fuzzTokens(t, fuzzStageInput[i])); err != nil {
				t.Fatalf("stage %d: %v", i, err)
			}
		}
		start, payload, ok := fuzzParseCommand(bytes.ReplaceAll(raw, []byte("$SID"), []byte(sid)))
		if !ok {
			return
		}
		from := fuzzRequester
		if stage&0x80 != 0 {
			from = fuzzOther
		}
		before := len(cur.seen)
		r, err = fuzzRequest(t, p, from, start, payload)
		took := len(cur.seen) > before
		seen := cur.seen

		// Another requester never continues the session.
		if stage&0x80 != 0 && attr(start, "sessionid") == sid && (err == nil || took) {
			t.Fatalf("another requester continued the session: %v", err)
		}
		// bad-payload exactly when the submission does not validate
		// against the stage's form.
		def := fuzzStages[at]()
		got, serr := submitted(payload)
		if serr == nil {
			_, serr = validate(def, got)
		}
		if Condition(err) == "bad-payload" && serr == nil {
			t.Fatalf("bad-payload (%v) for a submission that validates: %q", err, got)
		}
		if took && serr != nil {
			t.Fatalf("the stage accepted a submission that does not validate (%v)", serr)
		}
		if took && seen[len(seen)-1].stage != at {
			t.Fatalf("stage %d checked values at stage %d", seen[len(seen)-1].stage, at)
		}
		// Accepted values are shown back after prev; secrets never.
		if took && err == nil && r.Status == string(Executing) {
			back, err := fuzzRequest(t, p, fuzzRequester, fuzzStart("node", fuzzNode, "sessionid", sid, "action", "prev"), nil)
			if err != nil {
				t.Fatalf("prev after next: %v", err)
			}
			vals := seen[len(seen)-1].vals
			for _, fl := range back.Forms[0].Fields {
				want, ok := vals[fl.Var]
				switch {
				case fl.Type == string(form.TypeTextPrivate):
					want = nil
				case !ok:
					want = fuzzFieldDefault(def, fl.Var)
				}
				if fl.Type == string(form.TypeFixed) {
					continue
				}
				if !slices.Equal(fl.Values, want) && !(len(fl.Values) == 0 && len(want) == 0) {
					t.Fatalf("after prev, field %q shows %q, want %q", fl.Var, fl.Values, want)
				}
			}
		}
	})
}
