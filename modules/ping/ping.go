// Package ping answers XEP-0199 pings to the server JID with an empty result
// and advertises urn:xmpp:ping.
package ping

import (
	"context"
	"encoding/xml"

	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"

	"github.com/adhocd/adhocd/modules"
)

// Module answers pings.
type Module struct{}

var (
	_ modules.Module    = Module{}
	_ modules.IQHandler = Module{}
	_ modules.Features  = Module{}
)

// New returns the ping module.
func New() modules.Module { return Module{} }

// Name implements modules.Module.
func (Module) Name() string { return "ping" }

// Start implements modules.Module.
func (Module) Start(context.Context, modules.Host) error { return nil }

// Stop implements modules.Module.
func (Module) Stop(context.Context) error { return nil }

// Routes implements modules.IQHandler.
func (Module) Routes() []modules.Route {
	return []modules.Route{{Type: stanza.GetIQ, Payload: xml.Name{Space: ping.NS, Local: "ping"}}}
}

// RemoteRoutes implements modules.RemoteIQHandler: other servers ping this
// one too (XEP-0199 §4.3).
func (m Module) RemoteRoutes() []modules.Route { return m.Routes() }

// HandleIQ implements modules.IQHandler: a ping gets an empty result.
func (Module) HandleIQ(context.Context, modules.IQ) (xml.TokenReader, error) { return nil, nil }

// Features implements modules.Features.
func (Module) Features() []string { return []string{ping.NS} }
