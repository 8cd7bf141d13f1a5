// Package buildinfo says which build of adhocd is running: the version
// stamped at build time (go build -ldflags "-X
// github.com/adhocd/adhocd/buildinfo.version=v1.2.3", as the Dockerfile
// does), else the module version Go records (a `go install …@v1.2.3`
// build), else the VCS revision Go records from a checkout, else "(devel)".
// XEP-0092, the status command and `adhocd version` report it.
package buildinfo

import "runtime/debug"

// version is set by the linker (-X); empty in a plain build.
var version string

// Version returns the running build's version.
func Version() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		return "(devel) " + rev + modified
	}
	return "(devel)"
}
