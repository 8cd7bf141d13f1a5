package mam

import (
	"testing"

	"mellium.im/xmpp/jid"
)

// TestNormalJID: the fast path gives what jid.Parse gives, whole and bare,
// and refuses what it refuses.
func TestNormalJID(t *testing.T) {
	for _, s := range []string{
		"alice@localhost", "alice@localhost/phone", "localhost", "localhost/x y", "bob@example.org/Gajim.AB12",
		"Alice@LocalHost/Phone", "ｆｕｌｌ@example.org", "juliet@example.com/☃", "a@b@c", "@localhost", "alice@/x",
		"alice@localhost/", "/res", "", "a_b-c.d@e-f.example/é",
	} {
		full, bare, ok := normalJID(s)
		j, err := jid.Parse(s)
		switch {
		case err != nil && ok:
			t.Errorf("%q: taken as %q, but jid.Parse refuses it: %v", s, full, err)
		case err == nil && !ok:
			t.Errorf("%q: refused, but jid.Parse gives %q", s, j)
		case err == nil && (full != j.String() || bare != j.Bare().String()):
			t.Errorf("%q: %q and %q, want %q and %q", s, full, bare, j, j.Bare())
		}
	}
}
