// Package defaults is the constructor table of the modules every adhocd
// server runs unless told otherwise: XEP-0030 disco, XEP-0050 commands,
// XEP-0133 administration, XEP-0199 ping, XEP-0092 version, XEP-0160
// offline messages, XEP-0280 carbons, XEP-0191 blocking, XEP-0163 PEP,
// XEP-0313 archives, XEP-0054 vCards with XEP-0398 avatar conversion
// (after PEP and vCards, which it builds on), XEP-0049 private storage,
// XEP-0402 bookmarks kept one list with XEP-0048 (after PEP and private
// storage), XEP-0012 last activity, the XEP-0045 group chat service
// (muc.*), the XEP-0363 file upload service (http_upload.*, off by
// default) and XEP-0352 client state indication
// (last, so that its interceptor holds only what the others let pass). It
// is a separate package so that the modules can import package modules
// without a cycle.
package defaults

import (
	"github.com/adhocd/adhocd/modules"
	"github.com/adhocd/adhocd/modules/admin"
	"github.com/adhocd/adhocd/modules/avatars"
	"github.com/adhocd/adhocd/modules/blocking"
	"github.com/adhocd/adhocd/modules/bookmarks"
	"github.com/adhocd/adhocd/modules/carbons"
	"github.com/adhocd/adhocd/modules/commands"
	"github.com/adhocd/adhocd/modules/component"
	"github.com/adhocd/adhocd/modules/csi"
	"github.com/adhocd/adhocd/modules/disco"
	"github.com/adhocd/adhocd/modules/last"
	"github.com/adhocd/adhocd/modules/mam"
	"github.com/adhocd/adhocd/modules/muc"
	"github.com/adhocd/adhocd/modules/offline"
	"github.com/adhocd/adhocd/modules/pep"
	"github.com/adhocd/adhocd/modules/ping"
	"github.com/adhocd/adhocd/modules/private"
	"github.com/adhocd/adhocd/modules/upload"
	"github.com/adhocd/adhocd/modules/vcard"
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
	blocking.New,
	pep.New,
	mam.New,
	vcard.New,
	avatars.New,
	private.New,
	bookmarks.New,
	last.New,
	muc.FromConfig,
	upload.FromConfig,
	component.FromConfig,
	csi.New,
}

// Modules builds one instance of every module in Table.
func Modules() []modules.Module {
	out := make([]modules.Module, 0, len(Table))
	for _, c := range Table {
		out = append(out, c())
	}
	return out
}
