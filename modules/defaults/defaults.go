// Package defaults is the constructor table of the modules every adhocd
// server runs unless told otherwise: XEP-0030 disco, XEP-0050 commands,
// XEP-0133 administration, XEP-0199 ping and XEP-0092 version. It is a
// separate package so that the modules can import package modules without a
// cycle.
package defaults

import (
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/modules/carbons"
	"github.com/adhocd/adhocd/modules/commands"
	"github.com/adhocd/adhocd/modules/disco"
	"github.com/adhocd/adhocd/modules/offline"
	"github.com/adhocd/adhocd/modules/ping"
	"github.com/adhocd/adhocd/modules/version"
)

// Table lists the default modules in start order; they stop in reverse.
var Table = []modules.Constructor{
	disco.New,
	commands.New,
	admin.New,
	ping.New,
	version.New,
	offline.New,
	carbons.New,
}

// Modules builds one instance of every module in Table.
func Modules() []modules.Module {
	out := make([]modules.Module, 0, len(Table))
	for _, c := range Table {
		out = append(out, c())
	}
	return out
}
