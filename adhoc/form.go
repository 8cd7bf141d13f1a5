package adhoc

import (
	"encoding/xml"
	"fmt"
	"io"
	"slices"
	"strings"

	"mellium.im/xmlstream"
	"mellium.im/xmpp/form"

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

// withValues renders a stage's form with earlier answers as the fields'
// values: mellium renders a form of type 'form' from its field definitions
// only, so the values are written into the token stream here, in XEP-0004
// order (after desc and required, before the options). Private fields
// (passwords) are never echoed back.
func withValues(def *form.Data, vals Values) xml.TokenReader {
	types := map[string]form.FieldType{}
	def.ForFields(func(f form.FieldData) { types[f.Var] = f.Type })
	src := def.TokenReader()
	var pending []xml.Token // tokens to emit before reading more
	var override []string   // values for the field being copied
	inField, written, depth := false, false, 0
	emitValues := func() {
		if inField && !written {
			written = true
			v := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "value"}}
			for _, s := range override {
				pending = append(pending, v, xml.CharData(s), v.End())
			}
		}
	}
	return xmlstream.ReaderFunc(func() (xml.Token, error) {
		for {
			if len(pending) > 0 {
				t := pending[0]
				pending = pending[1:]
				return t, nil
			}
			t, err := src.Token()
			if t == nil {
				return nil, err
			}
			switch tok := t.(type) {
			case xml.StartElement:
				depth++
				if tok.Name.Local == "field" && depth == 2 {
					name := attr(tok, "var")
					v, ok := vals[name]
					typ := types[name]
					inField = ok && name != "" && typ != form.TypeFixed && typ != form.TypeTextPrivate
					override, written = v, false
				} else if inField && depth == 3 {
					switch tok.Name.Local {
					case "value":
						// Replaced by the earlier answer: skip to its end.
						skip(src)
						depth--
						continue
					case "option":
						emitValues()
					}
				}
			case xml.EndElement:
				if inField && depth == 2 {
					emitValues()
					inField = false
					pending = append(pending, t)
					depth--
					continue
				}
				depth--
			}
			if len(pending) > 0 {
				pending = append(pending, t)
				continue
			}
			return t, err
		}
	})
}

// skip reads up to the end of the element whose start was just read.
func skip(r xml.TokenReader) {
	for depth := 1; depth > 0; {
		t, err := r.Token()
		if err != nil && t == nil {
			return
		}
		switch t.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
	}
}

// asResult renders a form with type='result'.
func asResult(d *form.Data) xml.TokenReader {
	first := true
	return xmlstream.ReaderFunc(readerFunc(d.TokenReader(), func(t xml.Token) xml.Token {
		if st, ok := t.(xml.StartElement); ok && first {
			first = false
			st = st.Copy()
			for i, a := range st.Attr {
				if a.Name.Local == "type" {
					st.Attr[i].Value = "result"
				}
			}
			return st
		}
		return t
	}))
}

func readerFunc(r xml.TokenReader, f func(xml.Token) xml.Token) func() (xml.Token, error) {
	return func() (xml.Token, error) {
		t, err := r.Token()
		if t != nil {
			t = f(t)
		}
		return t, err
	}
}

// TokenReader renders the table as a result form with <reported/> and one
// <item/> per row.
func (t *Table) TokenReader() xml.TokenReader {
	x := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "x"}, Attr: []xml.Attr{{Name: xml.Name{Local: "type"}, Value: "result"}}}
	var toks []xml.Token
	toks = append(toks, x)
	if t.Title != "" {
		title := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "title"}}
		toks = append(toks, title, xml.CharData(t.Title), title.End())
	}
	field := func(attrs ...xml.Attr) xml.StartElement {
		return xml.StartElement{Name: xml.Name{Space: form.NS, Local: "field"}, Attr: attrs}
	}
	value := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "value"}}
	if t.FormType != "" {
		f := field(xml.Attr{Name: xml.Name{Local: "var"}, Value: "FORM_TYPE"}, xml.Attr{Name: xml.Name{Local: "type"}, Value: "hidden"})
		toks = append(toks, f, value, xml.CharData(t.FormType), value.End(), f.End())
	}
	rep := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "reported"}}
	toks = append(toks, rep)
	for _, c := range t.Columns {
		attrs := []xml.Attr{{Name: xml.Name{Local: "var"}, Value: c.Var}}
		if c.Label != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "label"}, Value: c.Label})
		}
		if c.Type != "" {
			attrs = append(attrs, xml.Attr{Name: xml.Name{Local: "type"}, Value: string(c.Type)})
		}
		f := field(attrs...)
		toks = append(toks, f, f.End())
	}
	toks = append(toks, rep.End())
	item := xml.StartElement{Name: xml.Name{Space: form.NS, Local: "item"}}
	for _, row := range t.Rows {
		toks = append(toks, item)
		for i, c := range t.Columns {
			if i >= len(row) {
				break
			}
			f := field(xml.Attr{Name: xml.Name{Local: "var"}, Value: c.Var})
			toks = append(toks, f, value, xml.CharData(row[i]), value.End(), f.End())
		}
		toks = append(toks, item.End())
	}
	toks = append(toks, x.End())
	return &tokens{toks: toks}
}

// tokens is an xml.TokenReader over tokens in memory.
type tokens struct{ toks []xml.Token }

func (r *tokens) Token() (xml.Token, error) {
	if len(r.toks) == 0 {
		return nil, io.EOF
	}
	t := r.toks[0]
	r.toks = r.toks[1:]
	return t, nil
}
