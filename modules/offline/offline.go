// Package offline is XEP-0160 offline messages, delivered with XEP-0203
// delays. A message of type normal or chat with a
// <body/>, sent to a local account that has no available resource, is kept
// in storage and delivered with a XEP-0203 <delay/> when the account next
// sends available presence with a non-negative priority. Messages without a
// body (chat states, receipts) are not kept (XEP-0160 §3, XEP-0085 §5.5):
// they are answered service-unavailable as before, like messages beyond the
// limits, so that no message is lost without the sender being told.
//
// What is kept is bounded so that no user can fill the disk: per account by
// limits.max_offline_messages and limits.max_offline_bytes, for the whole
// store by limits.max_offline_total_bytes (service-unavailable of type wait
// past either), and by the store's free-disk floor (resource-constraint).
// Messages older than limits.offline_ttl are removed in the background, a
// bounded batch per transaction, and never delivered.
package offline

import (
	"context"
	"encoding/xml"
	"errors"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/metric"
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
	// kept and delivered count the messages kept offline and delivered
	// from offline storage.
	kept, delivered metric.Int64Counter
	h               modules.Host
	log             *slog.Logger

	stop context.CancelFunc // ends the expiry loop
	done sync.WaitGroup
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
	m.kept = modules.Counter(h, "adhocd.offline.kept", "Messages kept for offline accounts (XEP-0160).")
	m.delivered = modules.Counter(h, "adhocd.offline.delivered", "Messages delivered from offline storage.")
	m.h, m.log = h, h.Logger()
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	m.done.Go(func() { m.expireLoop(ctx) })
	return nil
}

// Stop implements modules.Module: it ends the expiry loop, waiting for a
// batch being removed.
func (m *Module) Stop(context.Context) error {
	if m.stop != nil {
		m.stop()
		m.done.Wait()
	}
	return nil
}

// ExpiryBatch is the most expired messages removed in one transaction, so
// that removing many never holds the store's writer for long.
const ExpiryBatch = 500

// expiryInterval is how often expired messages are looked for: an eighth of
// the TTL, so that none outlives it by much, within bounds.
func expiryInterval(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return time.Minute // to see a TTL set by a reload
	}
	return min(max(ttl/8, 50*time.Millisecond), 10*time.Minute)
}

// expireLoop removes expired messages until ctx ends.
func (m *Module) expireLoop(ctx context.Context) {
	for {
		ttl := m.h.Config().Limits.OfflineTTL.D()
		t := time.NewTimer(expiryInterval(ttl))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if ttl > 0 {
			m.expire(ctx, time.Now().Add(-ttl))
		}
	}
}

// expire removes every message kept since before before, ExpiryBatch per
// transaction.
func (m *Module) expire(ctx context.Context, before time.Time) {
	total := 0
	for ctx.Err() == nil {
		n, err := m.h.Store().ExpireOffline(ctx, before, ExpiryBatch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				m.log.Warn("expire offline messages", "err", err)
			}
			break
		}
		if n < ExpiryBatch {
			break
		}
	}
	if total > 0 {
		m.log.Info("expired offline messages", "removed", total)
	}
}

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
	raw := wire.SerializeElement(el, 2*lim.MaxStanzaBytes)
	if raw == "" {
		return errRecipientOffline
	}
	q := storage.OfflineQuota{MaxMessages: lim.MaxOfflineMessages, MaxBytes: lim.MaxOfflineBytes, MaxTotalBytes: lim.MaxOfflineTotalBytes}
	err := m.h.Store().StoreOffline(ctx, user, storage.OfflineMessage{Stamp: time.Now().UTC(), XML: raw}, q)
	switch {
	case err == nil:
		m.kept.Add(ctx, 1)
		return nil
	case errors.Is(err, storage.ErrFull):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable,
			Text: map[string]string{"en": "the recipient is offline and has too much waiting"}}
	case errors.Is(err, storage.ErrTotalFull):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ServiceUnavailable,
			Text: map[string]string{"en": "the recipient is offline and the server keeps no more messages for now"}}
	case errors.Is(err, syscall.ENOSPC):
		return stanza.Error{Type: stanza.Wait, Condition: stanza.ResourceConstraint,
			Text: map[string]string{"en": "the recipient is offline and the server's storage is full"}}
	case errors.Is(err, storage.ErrNotFound):
		return errRecipientOffline
	}
	m.log.Warn("store offline message", "user", user, "err", err)
	return stanza.Error{Type: stanza.Wait, Condition: stanza.InternalServerError,
		Text: map[string]string{"en": "the message could not be kept for the offline recipient"}}
}

// SessionReachable sends the session the messages kept for its account,
// oldest first, each stamped with when the server received it. Messages
// older than limits.offline_ttl that the background removal has not reached
// yet are dropped, not delivered.
func (m *Module) SessionReachable(ctx context.Context, s modules.Session) {
	user := s.JID().Localpart()
	msgs, err := m.h.Store().TakeOffline(ctx, user)
	if err != nil {
		m.log.Warn("offline messages", "user", user, "err", err)
		return
	}
	from := m.h.Domain().String()
	var expired time.Time
	if ttl := m.h.Config().Limits.OfflineTTL.D(); ttl > 0 {
		expired = time.Now().Add(-ttl)
	}
	for _, msg := range msgs {
		if msg.Stamp.Before(expired) {
			continue
		}
		el, ok := wire.ParseElement(msg.XML)
		if !ok {
			m.log.Warn("offline message unreadable", "user", user)
			continue
		}
		delay := xml.StartElement{Name: xml.Name{Space: nsDelay, Local: "delay"}, Attr: []xml.Attr{
			{Name: xml.Name{Local: "from"}, Value: from},
			{Name: xml.Name{Local: "stamp"}, Value: modules.Stamp(msg.Stamp)},
		}}
		el.Inner = append(el.Inner, delay, xml.CharData("Offline Storage"), delay.End())
		// Counted before it is handed on, so that whoever sees the
		// message also sees the count.
		m.delivered.Add(ctx, 1)
		s.Reply(el)
	}
}
