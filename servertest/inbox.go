package servertest

import (
	"encoding/xml"
	"slices"
	"strings"
	"testing"
	"time"
)

// clientStream opens what a Raw session's elements are read inside: the
// client stream, whose default namespace is jabber:client.
const clientStream = `<stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// DecodeElement decodes el, one top-level element as the server wrote it
// on a client stream (RFC 6120 §4.8.3: unprefixed names in jabber:client),
// into v as xml.Unmarshal would.
func DecodeElement(el string, v any) error {
	d := xml.NewDecoder(strings.NewReader(clientStream + el))
	if _, err := d.Token(); err != nil {
		return err
	}
	return d.Decode(v)
}

// Inbox is what a Raw session received and the test has not looked at
// yet: the top-level elements the server wrote, each decoded into a T as
// soon as it is complete. Tests that check a module's stanzas as they are
// on the wire take them from it by what they match, in the order they came,
// whatever else arrived between them.
type Inbox[T any] struct {
	raw    *Raw
	t      testing.TB
	name   string
	decode func(el string) (T, error)
	// buf is what arrived after the last complete element.
	buf     string
	pending []received[T]
}

// received is one element of an Inbox: as written, and decoded.
type received[T any] struct {
	xml string
	v   T
}

// NewInbox reads what r receives into an inbox; decode turns one element
// as written (see DecodeElement) into a T. name, the session's JID say,
// tells whose inbox failed a test.
func NewInbox[T any](t testing.TB, r *Raw, name string, decode func(el string) (T, error)) *Inbox[T] {
	return &Inbox[T]{raw: r, t: t, name: name, decode: decode}
}

// Read waits up to d for anything from the server and adds the elements
// it completed to the inbox.
func (in *Inbox[T]) Read(d time.Duration) {
	in.t.Helper()
	text, _ := in.raw.ReadUntil(`(?s).`, d)
	in.buf += text
	doc := clientStream + in.buf
	dec := xml.NewDecoder(strings.NewReader(doc))
	if _, err := dec.Token(); err != nil {
		in.t.Fatalf("%s: parse: %v", in.name, err)
	}
	done := len(clientStream)
	for {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			break
		}
		if _, ok := tok.(xml.StartElement); !ok {
			done = int(dec.InputOffset())
			continue
		}
		if err := dec.Skip(); err != nil {
			break // not complete yet
		}
		end := int(dec.InputOffset())
		v, err := in.decode(doc[off:end])
		if err != nil {
			in.t.Fatalf("%s: decode %s: %v", in.name, doc[off:end], err)
		}
		in.pending = append(in.pending, received[T]{xml: doc[off:end], v: v})
		done = end
	}
	in.buf = doc[done:]
}

// Next removes and returns the first element that match accepts, waiting
// up to Wait for it to arrive; it fails the test, naming what and listing
// what did arrive, when none does.
func (in *Inbox[T]) Next(what string, match func(T) bool) T {
	in.t.Helper()
	deadline := time.Now().Add(Wait)
	for {
		if i := slices.IndexFunc(in.pending, func(r received[T]) bool { return match(r.v) }); i >= 0 {
			v := in.pending[i].v
			in.pending = slices.Delete(in.pending, i, i+1)
			return v
		}
		left := time.Until(deadline)
		if left <= 0 {
			in.t.Fatalf("%s: no %s; received %q", in.name, what, in.Received())
		}
		in.Read(left)
	}
}

// Take removes and returns the elements received so far that match
// accepts, in the order they came.
func (in *Inbox[T]) Take(match func(T) bool) []T {
	var got []T
	in.pending = slices.DeleteFunc(in.pending, func(r received[T]) bool {
		if match(r.v) {
			got = append(got, r.v)
			return true
		}
		return false
	})
	return got
}

// Received is the inbox as the server wrote it, for a failure message: the
// elements not taken yet, then what arrived of the next one.
func (in *Inbox[T]) Received() []string {
	out := make([]string, 0, len(in.pending)+1)
	for _, r := range in.pending {
		out = append(out, r.xml)
	}
	return append(out, in.buf)
}
