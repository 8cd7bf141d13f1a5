package muc

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/adhocd/adhocd/modules"
)

// instruments are the service's metrics (docs/observability.md): the rooms
// and occupants this process holds, the messages the rooms passed on, and
// the stanzas refused past an occupant's rate.
type instruments struct {
	messages, rateLimited metric.Int64Counter
	gauges                metric.Registration
}

// Attributes of adhocd.muc.messages.
var (
	kindGroupchat = metric.WithAttributes(attribute.String("kind", "groupchat"))
	kindPrivate   = metric.WithAttributes(attribute.String("kind", "private"))
)

// startMetrics makes the instruments on h's meter.
func (m *Module) startMetrics(h modules.Host) {
	m.metrics.messages = modules.Counter(h, "adhocd.muc.messages", "Messages the group chat rooms passed on (XEP-0045), by kind: groupchat (to every occupant) or private (to one occupant).")
	m.metrics.rateLimited = modules.Counter(h, "adhocd.muc.rate_limited", "Stanzas of occupants refused past muc.message_rate (policy-violation).")
	meter := modules.MeterOf(h)
	rooms, err1 := meter.Int64ObservableGauge("adhocd.muc.rooms", metric.WithDescription("Rooms of the group chat service held by this process."))
	occupants, err2 := meter.Int64ObservableGauge("adhocd.muc.occupants", metric.WithDescription("Occupants of the rooms held by this process."))
	if err1 != nil || err2 != nil {
		m.log.Warn("metric not created", "name", "adhocd.muc.rooms", "err", err1, "err2", err2)
		return
	}
	reg, err := meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		nRooms, nOccupants := m.counts()
		o.ObserveInt64(rooms, int64(nRooms))
		o.ObserveInt64(occupants, int64(nOccupants))
		return nil
	}, rooms, occupants)
	if err != nil {
		m.log.Warn("metric callback not registered", "name", "adhocd.muc.rooms", "err", err)
		return
	}
	m.metrics.gauges = reg
}

// stopMetrics unregisters the gauges' callback.
func (m *Module) stopMetrics() {
	if m.metrics.gauges != nil {
		_ = m.metrics.gauges.Unregister()
		m.metrics.gauges = nil
	}
}

// counts returns the rooms held and their occupants. The rooms are listed
// under m.mu and counted each under its own lock, never with m.mu held
// (the lock order of Module.mu).
func (m *Module) counts() (rooms, occupants int) {
	m.mu.Lock()
	list := make([]*room, 0, len(m.rooms))
	for _, r := range m.rooms {
		list = append(list, r)
	}
	m.mu.Unlock()
	for _, r := range list {
		r.mu.Lock()
		if !r.gone {
			rooms++
			occupants += len(r.occupants)
		}
		r.mu.Unlock()
	}
	return rooms, occupants
}
