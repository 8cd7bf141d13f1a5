package account

// Fuzz targets for JIDs as adhocd reads them.
//
//   - FuzzUsername: Username(s, domain) either fails with an error (never a
//     panic, never a username with it) or returns a non-empty localpart that
//     is a fixed point (Username of it, bare or as user@domain, is itself),
//     makes a bare JID on domain that parses back to itself, and is the
//     localpart s names. ErrWrongDomain is returned exactly for a bare JID
//     of another domain.
//   - FuzzJID: what jid.Parse accepts is in normal form: its String parses
//     to the same JID and the same string, New on its parts gives it back,
//     and its bare JID does the same.

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/adhocd/adhocd/canonjid"
)

// fuzzDomains are server domains, as the server passes them (normalised by
// config validation).
var fuzzDomains = []string{"localhost", "example.org", "xn--mnchen-3ya.example", "münchen.example", "[::1]", "192.0.2.1"}

var fuzzJIDSeeds = []string{
	"alice", "alice@localhost", "Alice@LOCALHOST", "alice@localhost/phone", "alice@localhost.",
	"alice@example.org", "@localhost", "alice@", "alice@@localhost", "localhost", "localhost/res", "/res",
	"ALICE", "ﬀ", "\u212bngstr\u00f6m", "\u00c5ngstr\u00f6m@M\u00dcNCHEN.example", "alice@münchen.example",
	"alice@xn--mnchen-3ya.example", "a b", "a'b", "a\"b@localhost", "a:b", "a%b", "a#b", "a?b", "a!b", "a.b", ".a", "a.",
	"user@[::1]", "user@192.0.2.1", "user@[::1]/x", "\x00", "\xff", "a\u200bb", "a\u0301", "\u0301a",
	strings.Repeat("a", 1023), strings.Repeat("a", 1024), strings.Repeat("a", 1023) + "@localhost",
	"alice@localhost/" + strings.Repeat("r", 1024), "juliet@example.com/foo@bar", "juliet@example.com/foo/bar",
	"foo\\20bar@example.com", "\u0130stanbul", "\u03a3\u03a3@localhost", "\u00df@localhost",
}

func FuzzUsername(f *testing.F) {
	for i, s := range fuzzJIDSeeds {
		f.Add(s, uint8(i%len(fuzzDomains)))
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, d uint8) {
		domain := jid.MustParse(fuzzDomains[int(d)%len(fuzzDomains)]).String()
		u, err := Username(s, domain)

		// ErrWrongDomain exactly for a bare JID user@other (parsed the way
		// adhocd parses JIDs: canonjid; "0@.." is no JID at all).
		j, perr := canonjid.Parse(s)
		otherDomain := perr == nil && j.Localpart() != "" && j.Resourcepart() == "" && j.Domainpart() != domain
		if errors.Is(err, ErrWrongDomain) != otherDomain {
			t.Fatalf("Username(%q, %q): error %v; a bare JID of another domain: %v", s, domain, err, otherDomain)
		}
		if err != nil {
			if u != "" {
				t.Fatalf("Username(%q, %q) = %q with error %v", s, domain, u, err)
			}
			if !strings.HasPrefix(err.Error(), "account: ") {
				t.Fatalf("error %q does not say where it comes from", err)
			}
			return
		}
		if u == "" || !utf8.ValidString(u) {
			t.Fatalf("Username(%q, %q) = %q", s, domain, u)
		}
		// The username is the localpart s names.
		want := j
		if perr != nil || j.Localpart() == "" {
			want, err = jid.New(s, domain, "")
			if err != nil {
				t.Fatalf("Username(%q, %q) = %q, but %q is no localpart on it: %v", s, domain, u, s, err)
			}
		}
		if want.Localpart() != u {
			t.Fatalf("Username(%q, %q) = %q, want the localpart %q", s, domain, u, want.Localpart())
		}
		// A fixed point, bare or qualified.
		for _, again := range []string{u, u + "@" + domain} {
			v, err := Username(again, domain)
			if err != nil || v != u {
				t.Fatalf("Username(%q, %q) = %q; Username(%q) = %q, %v: not a fixed point", s, domain, u, again, v, err)
			}
		}
		// A bare JID on domain that parses back to itself.
		bare, err := jid.New(u, domain, "")
		if err != nil {
			t.Fatalf("username %q makes no JID on %s: %v", u, domain, err)
		}
		if bare.Localpart() != u || bare.Domainpart() != domain || bare.Resourcepart() != "" {
			t.Fatalf("username %q on %s makes %q", u, domain, bare)
		}
		back, err := jid.Parse(bare.String())
		if err != nil || !back.Equal(bare) || back.String() != bare.String() {
			t.Fatalf("%q parses to %q, %v", bare, back, err)
		}
	})
}

func FuzzJID(f *testing.F) {
	for _, s := range fuzzJIDSeeds {
		f.Add(s)
	}
	// mellium's jid.Parse alone is not idempotent (see package canonjid);
	// adhocd parses what people type with canonjid, whose result must be.
	f.Fuzz(func(t *testing.T, s string) {
		j, err := canonjid.Parse(s)
		if err != nil {
			return
		}
		for _, p := range []string{j.Localpart(), j.Domainpart(), j.Resourcepart()} {
			if len(p) > 1023 || !utf8.ValidString(p) {
				t.Fatalf("Parse(%q) has the part %q (RFC 7622 §3: at most 1023 bytes of UTF-8)", s, p)
			}
		}
		if j.Domainpart() == "" {
			t.Fatalf("Parse(%q) has no domainpart", s)
		}
		roundTrip := func(what string, j jid.JID) {
			k, err := canonjid.Parse(j.String())
			if err != nil {
				t.Fatalf("%s %q of %q does not parse: %v", what, j, s, err)
			}
			if k.String() != j.String() || !k.Equal(j) {
				t.Fatalf("%s %q of %q parses to %q: normalisation is not idempotent", what, j, s, k)
			}
			n, err := canonjid.New(j.Localpart(), j.Domainpart(), j.Resourcepart())
			if err != nil || !n.Equal(j) {
				t.Fatalf("New(parts of %q) = %q, %v", j, n, err)
			}
		}
		roundTrip("JID", j)
		roundTrip("bare JID", j.Bare())
		if j.Bare().Resourcepart() != "" || j.Bare().Localpart() != j.Localpart() || j.Bare().Domainpart() != j.Domainpart() {
			t.Fatalf("Bare(%q) = %q", j, j.Bare())
		}
	})
}
