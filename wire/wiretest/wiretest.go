// Package wiretest holds what the tests of the stream codec (package wire)
// and of the server's streams share: the stream header a client sends and
// the stream error conditions RFC 6120 defines.
package wiretest

// Header is the stream header a client sends on a TCP stream.
const Header = `<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`

// NameSet makes a set of names.
func NameSet(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// StreamConditions are the defined conditions of stream errors
// (RFC 6120 §4.9.3).
var StreamConditions = NameSet("bad-format", "bad-namespace-prefix", "conflict", "connection-timeout",
	"host-gone", "host-unknown", "improper-addressing", "internal-server-error", "invalid-from",
	"invalid-namespace", "invalid-xml", "not-authorized", "not-well-formed", "policy-violation",
	"remote-connection-failed", "reset", "resource-constraint", "restricted-xml", "see-other-host",
	"system-shutdown", "undefined-condition", "unsupported-encoding", "unsupported-feature",
	"unsupported-stanza-type", "unsupported-version")
