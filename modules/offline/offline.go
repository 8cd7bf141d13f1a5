// Package offline is XEP-0160 offline messages, delivered with XEP-0203
// delays. A message of type normal or chat with a
// <body/>, sent to a local account that has no available resource, is kept
// in storage, up to limits.max_offline_messages per account, and delivered
// with a XEP-0203 <delay/> when the account next sends available presence
// with a non-negative priority. Messages without a body (chat states,
// receipts) are not kept (XEP-0160 §3, XEP-0085 §5.5): they are answered
// service-unavailable as before, like messages beyond the limit, so that
// no message is lost without the sender being told.
package offline

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"time"

	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/storage"
	"github.com/adhocd/adhocd/wire"
)

// nsDelay is XEP-0203 Delayed Delivery.
const nsDelay = "urn:xmpp:delay"

// Module keeps messages for accounts with no session to take them
// (modules.OfflineStore) in the server's store, and delivers them when a
// session becomes reachable (modules.ReachableHook).
type Module struct {
	h   modules.Host
	log *slog.Logger
}

// New returns the offline messages module.
func New() modules.Module { return &Module{} }

// Interface guards: the capabilities the server finds on the module.
var (
	_ modules.OfflineStore  = (*Module)(nil)
	_ modules.ReachableHook = (*Module)(nil)
	_ modules.Features      = (*Module)(nil)
)

// Name implements modules.Module.
func (m *Module) Name() string { return "offline" }

// Start implements modules.Module.
func (m *Module) Start(_ context.Context, h modules.Host) error {
	m.h, m.log = h, h.Logger()
	return nil
}

// Stop implements modules.Module.
func (m *Module) Stop(context.Context) error { return nil }

// Features implements modules.Features: msgoffline, while
// limits.max_offline_messages lets messages be kept.
func (m *Module) Features() []string {
	if m.h.Config().Limits.MaxOfflineMessages <= 0 {
		return nil
	}
	return []string{"msgoffline"}
}

// errRecipientOffline is the answer when a message can be neither delivered
// nor kept.
var errRecipientOffline = stanza.Error{Type: stanza.Cancel, Condition: stanza.ServiceUnavailable,
	Text: map[string]string{"en": "the recipient is offline"}}

// KeepOffline keeps a message for user, or says why it cannot.
func (m *Module) KeepOffline(ctx context.Context, msg modules.Message, user string) error {
	lim := m.h.Config().Limits
	el := msg.El
	if lim.MaxOfflineMessages <= 0 || el.Sub(xml.Name{Space: stanza.NSClient, Local: "body"}) == nil {
		return errRecipientOffline
	}
	whole := make([]xml.Token, 0, len(el.Inner)+2)
	whole = append(append(append(whole, el.Start), el.Inner...), el.Start.End())
	raw := wire.Serialize(whole, 2*lim.MaxStanzaBytes)
	if raw == "" {
		return errRecipientOffline
	}
	err := m.h.Store().StoreOffline(ctx, user, storage.OfflineMessage{Stamp: time.Now().UTC(), XML: raw}, lim.MaxOfflineMessages)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrFull):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable,
			Text: map[string]string{"en": "the recipient is offline and has too many messages waiting"}}
	case errors.Is(err, storage.ErrNotFound):
		return errRecipientOffline
	}
	m.log.Warn("store offline message", "user", user, "err", err)
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError,
		Text: map[string]string{"en": "the message could not be kept for the offline recipient"}}
}

// SessionReachable sends the session the messages kept for its account,
// oldest first, each stamped with when the server received it.
func (m *Module) SessionReachable(ctx context.Context, s modules.Session) {
	user := s.JID().Localpart()
	msgs, err := m.h.Store().TakeOffline(ctx, user)
	if err != nil {
		m.log.Warn("offline messages", "user", user, "err", err)
		return
	}
	from := m.h.Domain().String()
	for _, msg := range msgs {
		toks := wire.Parse(msg.XML)
		var start xml.StartElement
		ok := len(toks) >= 2
		if ok {
			start, ok = toks[0].(xml.StartElement)
		}
		if !ok {
			m.log.Warn("offline message unreadable", "user", user)
			continue
		}
		el := &wire.Element{Start: start, Inner: toks[1 : len(toks)-1]}
		delay := xml.StartElement{Name: xml.Name{Space: nsDelay, Local: "delay"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "from"}, Value: from},
			{Name: xml.Name{Local: "stamp"}, Value: msg.Stamp.UTC().Format("2006-01-02T15:04:05.000Z")},
		}}
		el.Inner = append(el.Inner, delay, xml.CharData("Offline Storage"), delay.End())
		s.Reply(el)
	}
}
