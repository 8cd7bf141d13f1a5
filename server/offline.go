package server

import (
	"context"
	"encoding/xml"
	"errors"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// Offline messages (XEP-0160). A message of type normal or chat with a
// <body/>, sent to a local account that has no available resource, is kept
// in storage, up to limits.max_offline_messages per account, and delivered
// with a XEP-0203 <delay/> when the account next sends available presence
// with a non-negative priority. Messages without a body (chat states,
// receipts) are not kept (XEP-0160 §3, XEP-0085 §5.5): they are answered
// service-unavailable as before, like messages beyond the limit, so that
// no message is lost without the sender being told.

// nsDelay is XEP-0203 Delayed Delivery.
const nsDelay = "urn:xmpp:delay"

// featureOffline is the disco#info feature of XEP-0160.
const featureOffline = "msgoffline"

// errRecipientOffline is the answer when a message can be neither delivered
// nor kept.
var errRecipientOffline = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable,
	Text: map[string]string{"en": "the recipient is offline"}}

// storeOffline keeps el for user, or says why it cannot.
func (s *Server) storeOffline(ctx context.Context, el *wire.Element, user string) error {
	lim := s.limits()
	if lim.MaxOfflineMessages <= 0 || el.Sub(xml.Name{Space: stanza.NSClient, Local: "body"}) == nil {
		return errRecipientOffline
	}
	whole := make([]xml.Token, 0, len(el.Inner)+2)
	whole = append(append(append(whole, el.Start), el.Inner...), el.Start.End())
	raw := wire.Serialize(whole, 2*lim.MaxStanzaBytes)
	if raw == "" {
		return errRecipientOffline
	}
	err := s.store.StoreOffline(ctx, user, storage.OfflineMessage{Stamp: time.Now().UTC(), XML: raw}, lim.MaxOfflineMessages)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrFull):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable,
			Text: map[string]string{"en": "the recipient is offline and has too many messages waiting"}}
	case errors.Is(err, storage.ErrNotFound):
		return errRecipientOffline
	}
	s.log.Warn("store offline message", "user", user, "err", err)
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError,
		Text: map[string]string{"en": "the message could not be kept for the offline recipient"}}
}

// deliverOffline sends c the messages kept for its account, oldest first,
// each stamped with when the server received it.
func (s *Server) deliverOffline(ctx context.Context, c *conn) {
	msgs, err := s.store.TakeOffline(ctx, c.user)
	if err != nil {
		s.log.Warn("offline messages", "user", c.user, "err", err)
		return
	}
	for _, m := range msgs {
		toks := wire.Parse(m.XML)
		var start xml.StartElement
		ok := len(toks) >= 2
		if ok {
			start, ok = toks[0].(xml.StartElement)
		}
		if !ok {
			s.log.Warn("offline message unreadable", "user", c.user)
			continue
		}
		el := &wire.Element{Start: start, Inner: toks[1 : len(toks)-1]}
		delay := xml.StartElement{Name: xml.Name{Space: nsDelay, Local: "delay"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "from"}, Value: s.domain.String()},
			{Name: xml.Name{Local: "stamp"}, Value: m.Stamp.UTC().Format("2006-01-02T15:04:05.000Z")},
		}}
		el.Inner = append(el.Inner, delay, xml.CharData("Offline Storage"), delay.End())
		s.deliverOwn(c, el)
	}
}
