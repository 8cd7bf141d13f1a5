// Package ping answers XEP-0199 pings to the server JID with mellium's
// handler and advertises urn:xmpp:ping.
package ping

import (
	"context"

	"mellium.im/xmpp/ping"

	"github.com/adhocd/adhocd/modules"
)

// Module answers pings.
type Module struct{}

var _ modules.Module = Module{}

// New returns the ping module.
func New() modules.Module { return Module{} }

// Name implements modules.Module.
func (Module) Name() string { return "ping" }

// Start implements modules.Module.
func (Module) Start(_ context.Context, h modules.Host) error {
	h.Handle(ping.Handle())
	h.Disco().AddFeature(ping.NS)
	return nil
}

// Stop implements modules.Module.
func (Module) Stop(context.Context) error { return nil }
