package adhoc

import (
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"

	"mellium.im/xmpp/form"
	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/canonjid"
)

// submission is a submitted data form as it comes over the wire: field vars
// and raw values (a submit form need not repeat field types).
type submission struct {
	XMLName xml.Name `xml:"jabber:x:data x"`
	Type    string   `xml:"type,attr"`
	Fields  []struct {
		Var    string   `xml:"var,attr"`
		Values []string `xml:"value"`
	} `xml:"field"`
}

// values returns the submitted values by var; the first occurrence of a var
// wins.
func (s *submission) values() Values {
	out := Values{}
	for _, f := range s.Fields {
		if f.Var == "" {
			continue
		}
		if _, dup := out[f.Var]; dup {
			continue
		}
		out[f.Var] = f.Values
	}
	return out
}

// validate checks a submission against the stage's form and returns the
// values the stage accepts: only the form's fields, normalised (JIDs in
// canonical form, booleans as 1/0, duplicates in multi-valued fields dropped).
func validate(def *form.Data, got Values) (Values, error) {
	out := Values{}
	var errs []error
	def.ForFields(func(f form.FieldData) {
		if f.Var == "" || f.Type == form.TypeFixed {
			return
		}
		vals, present := got[f.Var]
		vals = trimEmpty(vals, f.Type)
		if len(vals) == 0 {
			if f.Required {
				errs = append(errs, &PayloadError{Field: f.Var, Msg: "is required"})
			}
			if present {
				out[f.Var] = nil
			}
			return
		}
		norm, err := checkField(def, f, vals)
		if err != nil {
			errs = append(errs, err)
			return
		}
		out[f.Var] = norm
	})
	if len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
}

func trimEmpty(vals []string, typ form.FieldType) []string {
	if typ == form.TypeTextMulti {
		return vals
	}
	var out []string
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			out = append(out, v)
		}
	}
	return out
}

func checkField(def *form.Data, f form.FieldData, vals []string) ([]string, error) {
	single := func() error {
		if len(vals) > 1 {
			return &PayloadError{Field: f.Var, Msg: "takes a single value"}
		}
		return nil
	}
	switch f.Type {
	case form.TypeBoolean:
		if err := single(); err != nil {
			return nil, err
		}
		switch strings.TrimSpace(vals[0]) {
		case "1", "true":
			return []string{"1"}, nil
		case "0", "false":
			return []string{"0"}, nil
		}
		return nil, &PayloadError{Field: f.Var, Msg: fmt.Sprintf("%q is not a boolean", vals[0])}
	case form.TypeJID, form.TypeJIDMulti:
		if f.Type == form.TypeJID {
			if err := single(); err != nil {
				return nil, err
			}
		}
		var out []string
		for _, v := range vals {
			j, err := canonjid.Parse(strings.TrimSpace(v))
			if err != nil {
				return nil, &PayloadError{Field: f.Var, Msg: fmt.Sprintf("%q is not a valid JID", v)}
			}
			if !slices.Contains(out, j.String()) {
				out = append(out, j.String())
			}
		}
		return out, nil
	case form.TypeList, form.TypeListMulti:
		if f.Type == form.TypeList {
			if err := single(); err != nil {
				return nil, err
			}
		}
		opts, _ := def.GetOptions(f.Var)
		var out []string
		for _, v := range vals {
			if len(opts) > 0 && !slices.ContainsFunc(opts, func(o form.FieldOpt) bool { return o.Value == v }) {
				return nil, &PayloadError{Field: f.Var, Msg: fmt.Sprintf("%q is not one of the options", v)}
			}
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return out, nil
	case form.TypeTextMulti:
		return vals, nil
	case form.TypeHidden:
		if err := single(); err != nil {
			return nil, err
		}
		if want, ok := def.GetString(f.Var); ok && want != "" && vals[0] != want {
			return nil, &PayloadError{Field: f.Var, Msg: fmt.Sprintf("must be %q", want)}
		}
		return vals, nil
	default:
		if err := single(); err != nil {
			return nil, err
		}
		return vals, nil
	}
}

// appendForm renders d as a data form of type typ onto toks, in one token
// slice (the reply path renders a form per request, and mellium's
// TokenReader builds a chain of readers per element). It writes what
// mellium's Data.TokenReader writes for a form it did not receive: the title
// on one line, one <instructions/> per line, and each field with its desc,
// required flag, values (empty values dropped, one only for single-value
// types, booleans and JIDs only when valid) and, for list types, options.
//
// vals, if not nil, replaces the values of the fields it names with earlier
// answers (a stage shown again after prev), except for fixed fields and
// private ones: passwords are never echoed back.
func appendForm(toks []xml.Token, d *form.Data, typ form.Type, vals Values) []xml.Token {
	// The attributes of <x/> and of every <field/> (three at most) share
	// one allocation, each capped to its own; so does the text, by chunks.
	attrs := make([]xml.Attr, 1, 1+3*d.Len())
	attrs[0] = xml.Attr{Name: xml.Name{Local: "type"}, Value: string(typ)}
	x := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "x"}, Attr: attrs[:1:1]}
	toks = append(toks, x)
	var chars []byte
	text := func(el plain, s string) {
		if len(chars)+len(s) > cap(chars) {
			// Chunks of 64 bytes, then twice the last, up to 4 KiB.
			chars = make([]byte, 0, max(min(max(64, 2*cap(chars)), 4096), len(s)))
		}
		from := len(chars)
		chars = append(chars, s...)
		toks = append(toks, el.start, xml.CharData(chars[from:len(chars):len(chars)]), el.end)
	}
	if t := d.Title(); t != "" {
		text(plainTitle, titleLine.Replace(t))
	}
	for line := range strings.FieldsFuncSeq(d.Instructions(), func(r rune) bool { return r == '\r' || r == '\n' }) {
		text(plainInstructions, line)
	}
	d.ForFields(func(f form.FieldData) {
		from := len(attrs)
		attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: string(f.Type)})
		if f.Var != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "var"}, Value: f.Var})
		}
		if f.Label != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "label"}, Value: f.Label})
		}
		el := xml.StartElement{Name: xml.Name{Local: "field"}, Attr: attrs[from:len(attrs):len(attrs)]}
		toks = append(toks, el)
		if f.Desc != "" {
			text(plainDesc, f.Desc)
		}
		if f.Required {
			toks = append(toks, plainRequired.start, plainRequired.end)
		}
		if v, ok := vals[f.Var]; ok && f.Var != "" && f.Type != form.TypeFixed && f.Type != form.TypeTextPrivate {
			for _, s := range v {
				text(plainValue, s)
			}
		} else {
			multi := f.Type == form.TypeListMulti || f.Type == form.TypeJIDMulti || f.Type == form.TypeTextMulti
			for _, s := range f.Raw {
				if s == "" || !validValue(f.Type, s) {
					continue
				}
				text(plainValue, s)
				if !multi {
					break
				}
			}
		}
		if f.Type == form.TypeList || f.Type == form.TypeListMulti {
			opts, _ := d.GetOptions(f.Var)
			for _, o := range opts {
				opt := xml.StartElement{Name: xml.Name{Local: "option"}, Attr: []xml.Attr{{Name: xml.Name{Local: "label"}, Value: o.Label}}}
				toks = append(toks, opt)
				text(plainValue, o.Value)
				toks = append(toks, endOption)
			}
		}
		toks = append(toks, endField)
	})
	return append(toks, endX)
}

// plain is the start and end tokens of an element without attributes,
// put in interfaces once and shared by every reply (a token boxed in an
// interface is an allocation, and a form has many). Nothing writes to the
// tokens it reads: a start's nil attributes cannot be appended to in place.
type plain struct{ start, end xml.Token }

func plainElement(space, local string) plain {
	n := xml.Name{Space: space, Local: local}
	return plain{xml.StartElement{Name: n}, xml.EndElement{Name: n}}
}

var (
	plainTitle        = plainElement("", "title")
	plainInstructions = plainElement("", "instructions")
	plainDesc         = plainElement("", "desc")
	plainRequired     = plainElement("", "required")
	plainValue        = plainElement("", "value")

	endField  xml.Token = xml.EndElement{Name: xml.Name{Local: "field"}}
	endOption xml.Token = xml.EndElement{Name: xml.Name{Local: "option"}}
	endX      xml.Token = xml.EndElement{Name: xml.Name{Space: form.NS, Local: "x"}}

	// The same in the form namespace, as a table writes them.
	formTitle              = plainElement(form.NS, "title")
	formValue              = plainElement(form.NS, "value")
	formReported           = plainElement(form.NS, "reported")
	formItem               = plainElement(form.NS, "item")
	formEndField xml.Token = xml.EndElement{Name: xml.Name{Space: form.NS, Local: "field"}}
)

// titleLine puts a title on one line, as mellium does.
var titleLine = strings.NewReplacer("\r\n", " ", "\n\r", " ", "\n", " ", "\r", " ")

// validValue is mellium's rule for rendering a field's own value: booleans
// and JIDs only when they parse.
func validValue(t form.FieldType, s string) bool {
	switch t {
	case form.TypeBoolean:
		return s == "true" || s == "false" || s == "0" || s == "1"
	case form.TypeJID, form.TypeJIDMulti:
		_, err := jid.Parse(s)
		return err == nil
	}
	return true
}

// TokenReader renders the table as a result form with <reported/> and one
// <item/> per row.
func (t *Table) TokenReader() xml.TokenReader { return &tokens{toks: t.appendTo(nil)} }

// appendTo renders the table onto toks.
func (t *Table) appendTo(toks []xml.Token) []xml.Token {
	x := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "result"}}}
	toks = append(toks, x)
	if t.Title != "" {
		toks = append(toks, formTitle.start, xml.CharData(t.Title), formTitle.end)
	}
	field := func(attrs ...xml.Attr) xml.StartElement {
		return xml.StartElement{Name: xml.Name{Space: form.NS, Local: "field"}, Attr: attrs}
	}
	if t.FormType != "" {
		f := field(xml.Attr{Name: xml.Name{Local: "var"}, Value: "FORM_TYPE"}, xml.Attr{Name: xml.Name{Local: "type"}, Value: "hidden"})
		toks = append(toks, f, formValue.start, xml.CharData(t.FormType), formValue.end, formEndField)
	}
	toks = append(toks, formReported.start)
	for _, c := range t.Columns {
		attrs := []xml.Attr{{Name: xml.Name{Local: "var"}, Value: c.Var}}
		if c.Label != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "label"}, Value: c.Label})
		}
		if c.Type != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: string(c.Type)})
		}
		f := field(attrs...)
		toks = append(toks, f, formEndField)
	}
	toks = append(toks, formReported.end)
	for _, row := range t.Rows {
		toks = append(toks, formItem.start)
		for i, c := range t.Columns {
			if i >= len(row) {
				break
			}
			f := field(xml.Attr{Name: xml.Name{Local: "var"}, Value: c.Var})
			toks = append(toks, f, formValue.start, xml.CharData(row[i]), formValue.end, formEndField)
		}
		toks = append(toks, formItem.end)
	}
	return append(toks, endX)
}

// tokens is an xml.TokenReader over tokens in memory.
type tokens struct{ toks []xml.Token }

// Tokens returns what is left to read, for a consumer that takes the
// tokens whole (adhocd's router writes a command's reply without copying
// it); the tokens are built for this reply alone and are not reused.
func (r *tokens) Tokens() []xml.Token { return r.toks }

func (r *tokens) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}
