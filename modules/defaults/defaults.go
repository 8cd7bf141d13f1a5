// Package defaults is the constructor table of the modules every adhocd
// server runs unless told otherwise. It is a separate package so that the
// modules can import package modules without a cycle.
package defaults

import (
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/modules/commands"
	"github.com/adhocd/adhocd/modules/disco"
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
}

// Modules builds one instance of every module in Table.
func Modules() []modules.Module {
	out := make([]modules.Module, 0, len(Table))
	for _, c := range Table {
		out = append(out, c())
	}
	return out
}
