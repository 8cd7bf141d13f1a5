package wire

import (
	"bytes"
	"encoding/xml"
	"sync"
)

// Output encodes one element into memory before it is written whole. Outputs
// are pooled rather than one kept per connection: an idle connection then
// holds no write buffer.
type Output struct {
	buf bytes.Buffer
	enc Encoder
}

var outputs = sync.Pool{New: func() any { return &Output{} }}

// NewOutput returns an empty Output from the pool. Release returns it.
func NewOutput() *Output { return outputs.Get().(*Output) }

// Encode writes r's tokens to the buffer; they must make whole elements,
// outside of which root is the default namespace. After an error the
// Output must be dropped, not released: its encoder may be mid-element.
func (o *Output) Encode(r xml.TokenReader, root string) error {
	o.enc.Reset(&o.buf, root)
	return o.enc.CopyFrom(r)
}

// EncodeElement writes el, outside of which root is the default namespace.
func (o *Output) EncodeElement(el *Element, root string) error {
	o.enc.Reset(&o.buf, root)
	if err := o.enc.Start(el.Start); err != nil {
		return err
	}
	for _, t := range el.Inner {
		if err := o.enc.Token(t); err != nil {
			return err
		}
	}
	if err := o.enc.End(el.Start.End()); err != nil {
		return err
	}
	return o.enc.Close()
}

// Bytes is what was encoded; it is valid until Release.
func (o *Output) Bytes() []byte { return o.buf.Bytes() }

// Len is the number of bytes encoded.
func (o *Output) Len() int { return o.buf.Len() }

// Release returns o to the pool, unless a large element grew its buffer.
func (o *Output) Release() {
	if o.buf.Cap() > 64<<10 {
		return
	}
	o.buf.Reset()
	outputs.Put(o)
}
