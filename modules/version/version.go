// Package version answers XEP-0092 software-version queries to the server JID
// with mellium's handler: the name adhocd, the module's build version and the
// Go runtime's operating system.
package version

import (
	"context"
	"runtime"
	"runtime/debug"

	"mellium.im/xmpp/version"

	"github.com/adhocd/adhocd/modules"
)

// Module answers version queries.
type Module struct{}

var _ modules.Module = Module{}

// New returns the version module.
func New() modules.Module { return Module{} }

// Name implements modules.Module.
func (Module) Name() string { return "version" }

// Version is the running build's module version ("(devel)" from a checkout).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Start implements modules.Module.
func (Module) Start(_ context.Context, h modules.Host) error {
	h.Handle(version.Handle(version.Query{Name: "adhocd", Version: Version(), OS: runtime.GOOS}))
	h.Disco().AddFeature(version.NS)
	return nil
}

// Stop implements modules.Module.
func (Module) Stop(context.Context) error { return nil }
