// Package version answers XEP-0092 software-version queries to the server JID:
// the name adhocd, the module's build version and the Go runtime's operating
// system, rendered with mellium.im/xmpp/version.
package version

import (
	"context"
	"encoding/xml"
	"runtime"

	"mellium.im/xmpp/stanza"
	"mellium.im/xmpp/version"

	"github.com/adhocd/adhocd/buildinfo"
	"github.com/adhocd/adhocd/modules"
)

// Module answers version queries.
type Module struct{}

var (
	_ modules.Module    = Module{}
	_ modules.IQHandler = Module{}
	_ modules.Features  = Module{}
)

// New returns the version module.
func New() modules.Module { return Module{} }

// Name implements modules.Module.
func (Module) Name() string { return "version" }

// Version is the running build's version (package buildinfo).
func Version() string { return buildinfo.Version() }

// Start implements modules.Module.
func (Module) Start(context.Context, modules.Host) error { return nil }

// Stop implements modules.Module.
func (Module) Stop(context.Context) error { return nil }

// Routes implements modules.IQHandler.
func (Module) Routes() []modules.Route {
	return []modules.Route{{Type: stanza.GetIQ, Payload: xml.Name{Space: version.NS, Local: "query"}}}
}

// RemoteRoutes implements modules.RemoteIQHandler: the software version is
// what the server tells anyone (XEP-0092).
func (m Module) RemoteRoutes() []modules.Route { return m.Routes() }

// HandleIQ implements modules.IQHandler.
func (Module) HandleIQ(context.Context, modules.IQ) (xml.TokenReader, error) {
	return version.Query{Name: "adhocd", Version: Version(), OS: runtime.GOOS}.TokenReader(), nil
}

// Features implements modules.Features.
func (Module) Features() []string { return []string{version.NS} }
