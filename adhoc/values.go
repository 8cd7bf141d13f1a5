package adhoc

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"
)

// Encode turns a struct into form values: each exported field tagged
// `adhoc:"var"` becomes that field var. Supported field types: string,
// []string, bool, int kinds, jid.JID and []jid.JID.
func Encode(v any) (Values, error) {
	rv := reflect.Indirect(reflect.ValueOf(v))
	if rv.Kind() != reflect.Struct {
		return nil, fmt.Errorf("adhoc: encode %T: not a struct", v)
	}
	out := Values{}
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		name, ok := rt.Field(i).Tag.Lookup("adhoc")
		if !ok || name == "" || name == "-" {
			continue
		}
		switch f := rv.Field(i).Interface().(type) {
		case string:
			out[name] = []string{f}
		case []string:
			out[name] = append([]string(nil), f...)
		case bool:
			out[name] = []string{map[bool]string{true: "1", false: "0"}[f]}
		case jid.JID:
			if f.String() != "" {
				out[name] = []string{f.String()}
			}
		case []jid.JID:
			for _, j := range f {
				out[name] = append(out[name], j.String())
			}
		default:
			if k := rv.Field(i).Kind(); k >= reflect.Int && k <= reflect.Int64 {
				out[name] = []string{strconv.FormatInt(rv.Field(i).Int(), 10)}
				continue
			}
			return nil, fmt.Errorf("adhoc: encode field %s: unsupported type %s", rt.Field(i).Name, rt.Field(i).Type)
		}
	}
	return out, nil
}

// Decode fills the fields of the struct v points to from the values, by the
// same tags as Encode. A value that does not parse as the field's type is a
// *PayloadError naming the field var.
func (v Values) Decode(dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("adhoc: decode into %T: not a pointer to a struct", dst)
	}
	rv = rv.Elem()
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		name, ok := rt.Field(i).Tag.Lookup("adhoc")
		if !ok || name == "" || name == "-" {
			continue
		}
		vals, present := v[name]
		if !present {
			continue
		}
		first := ""
		if len(vals) > 0 {
			first = vals[0]
		}
		f := rv.Field(i)
		bad := func(msg string) error { return &PayloadError{Field: name, Msg: msg} }
		switch f.Interface().(type) {
		case string:
			f.SetString(first)
		case []string:
			f.Set(reflect.ValueOf(append([]string(nil), vals...)))
		case bool:
			switch strings.TrimSpace(first) {
			case "1", "true":
				f.SetBool(true)
			case "0", "false", "":
				f.SetBool(false)
			default:
				return bad(fmt.Sprintf("%q is not a boolean", first))
			}
		case jid.JID:
			if first == "" {
				continue
			}
			j, err := jid.Parse(first)
			if err != nil {
				return bad(fmt.Sprintf("%q is not a valid JID", first))
			}
			f.Set(reflect.ValueOf(j))
		case []jid.JID:
			js := make([]jid.JID, 0, len(vals))
			for _, s := range vals {
				j, err := jid.Parse(s)
				if err != nil {
					return bad(fmt.Sprintf("%q is not a valid JID", s))
				}
				js = append(js, j)
			}
			f.Set(reflect.ValueOf(js))
		default:
			if k := f.Kind(); k >= reflect.Int && k <= reflect.Int64 {
				n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
				if err != nil || f.OverflowInt(n) {
					return bad(fmt.Sprintf("%q is not a whole number", first))
				}
				f.SetInt(n)
				continue
			}
			return fmt.Errorf("adhoc: decode field %s: unsupported type %s", rt.Field(i).Name, f.Type())
		}
	}
	return nil
}
